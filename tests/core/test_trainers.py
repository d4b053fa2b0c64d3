"""The Trainer every method shares: how a classifier's loss is averaged, one evaluation per step,
labelled evaluation bars."""

from __future__ import annotations

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, DataCollatorWithPadding, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.lora import LoraArguments, apply_lora
from hf_finetune.core.model.trainers import OrderedEvalTrainer, TargetLossTrainer, progress_label

TEXTS = ["WINNER! claim your prize now", "see you at six", "URGENT call 0800 now", "ok lar"]


@pytest.mark.parametrize("lora", [False, True])
def test_gradient_accumulation_averages_a_classifier_loss_instead_of_summing_it(tiny_gpt2, tmp_path, lora):
    """A classifier's forward takes **kwargs, so Trainer would take its batch-mean loss for one already
    divided by the accumulated label count: accumulation would sum, and N processes scale it N-fold."""
    tokenizer = load_tokenizer(str(tiny_gpt2))
    torch.manual_seed(0)
    model = load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer)
    if lora:
        model = apply_lora(model, LoraArguments(lora_r=4))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"), labels=torch.tensor([1, 0, 1, 0]))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", gradient_accumulation_steps=2)
    trainer = OrderedEvalTrainer(model=model, args=args, processing_class=tokenizer)
    assert trainer.model_accepts_loss_kwargs is False

    model.train()
    mean = model(**batch).loss
    mean.backward()
    head = next(p for name, p in model.named_parameters() if "score" in name and p.requires_grad)
    full_gradient = head.grad.clone()
    model.zero_grad()

    trainer.current_gradient_accumulation_steps = 2
    step_loss = trainer.training_step(model, batch)
    assert step_loss.item() == pytest.approx(mean.item() / 2, rel=1e-5)
    torch.testing.assert_close(head.grad, full_gradient / 2, rtol=1e-5, atol=1e-8)


def copy_dataset(tokenizer) -> datasets.Dataset:
    ids = [tokenizer(text)["input_ids"] for text in TEXTS]
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": ids})


def causal_trainer(tiny_gpt2, tmp_path, eval_dataset, **flags) -> TargetLossTrainer:
    tokenizer = load_tokenizer(str(tiny_gpt2))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, save_strategy="no",
                             report_to="none", use_cpu=True, **flags)  # fmt: skip
    return TargetLossTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_gpt2), args=args,
                             train_dataset=copy_dataset(tokenizer), eval_dataset=eval_dataset(tokenizer),
                             processing_class=tokenizer, data_collator=padding_collator(tokenizer),
                             callbacks=[EvaluateAtEpochEnd()])  # fmt: skip


@pytest.mark.parametrize(
    "eval_steps, evaluated_at",
    [
        (2, [2, 4]),  # every epoch end (steps 2, 4) is also an eval_steps multiple
        (3, [2, 3, 4]),  # epoch end 2; step 3; step 4 is the last step (Trainer) and an epoch end
    ],
)
def test_each_step_is_evaluated_and_printed_once(tiny_gpt2, tmp_path, capsys, eval_steps, evaluated_at):
    trainer = causal_trainer(tiny_gpt2, tmp_path, copy_dataset, num_train_epochs=2, eval_strategy="steps",
                             eval_steps=eval_steps, logging_strategy="no", disable_tqdm=True)  # fmt: skip
    trainer.train()
    assert [entry["step"] for entry in trainer.state.log_history if "eval_loss" in entry] == evaluated_at
    printed = [line for line in capsys.readouterr().out.splitlines() if "'eval_loss'" in line]
    assert len(printed) == len(evaluated_at)


@pytest.mark.parametrize(
    "description, prefix, label",
    [
        ("Evaluation", "eval_validation", "evaluating validation"),
        ("Evaluation", "eval_train", "evaluating training sample"),
        ("Evaluation", "eval", "evaluating validation"),
        ("Prediction", "test", "predicting test"),
        ("Prediction", "eval", "predicting validation"),
        ("Prediction", "train", "predicting train"),
    ],
)
def test_progress_label_names_the_split(description, prefix, label):
    assert progress_label(description, prefix) == label


def test_evaluation_and_prediction_bars_say_what_they_run_through(tiny_gpt2, tmp_path, capsys):
    def both(tokenizer):
        return {"validation": copy_dataset(tokenizer), "train": copy_dataset(tokenizer)}

    trainer = causal_trainer(tiny_gpt2, tmp_path, both, per_device_eval_batch_size=2)
    trainer.evaluate()
    trainer.predict(copy_dataset(trainer.processing_class), metric_key_prefix="test")
    bars = capsys.readouterr().err
    for label in ("evaluating validation:", "evaluating training sample:", "predicting test:"):
        assert f"\r{label}" in bars, bars[-1000:]
    assert bars.endswith("\r") and not bars.rsplit("\r", 2)[-2].strip()  # gone once done: a line or the summary follows
    quiet = causal_trainer(tiny_gpt2, tmp_path, both, disable_tqdm=True)
    assert quiet.progress is None and not any(isinstance(c, ProgressCallback) for c in quiet.callback_handler.callbacks)


def test_evaluation_runs_sorted_by_length_and_predictions_come_back_in_dataset_order(tiny_gpt2, tmp_path):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    texts = ["a much longer text about a prize you won, call now", "ok", "see you at six then", "hi there"]
    dataset = datasets.Dataset.from_dict({"input_ids": [tokenizer(text)["input_ids"] for text in texts],
                                          "labels": [0, 1, 0, 1]})  # fmt: skip
    torch.manual_seed(0)
    model = load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer).eval()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_eval_batch_size=2)
    trainer = OrderedEvalTrainer(model=model, args=args, processing_class=tokenizer,
                                 data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip
    widths = [batch["input_ids"].shape[1] for batch in trainer.get_eval_dataloader(dataset)]
    lengths = sorted(len(ids) for ids in dataset["input_ids"])
    assert widths == [lengths[1], lengths[3]], widths  # the two short texts together, then the two long ones
    output = trainer.predict(dataset)
    assert output.label_ids.tolist() == [0, 1, 0, 1]
    with torch.no_grad():  # each text alone, no padding: the logits the prediction must hold, in order
        expected = [model(input_ids=torch.tensor([ids])).logits[0].numpy() for ids in dataset["input_ids"]]
    torch.testing.assert_close(torch.tensor(output.predictions), torch.tensor(expected), rtol=1e-4, atol=1e-5)
