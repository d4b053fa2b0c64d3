"""The label-token method's data and model layers on real rotten_tomatoes examples."""

from __future__ import annotations

import json

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, TrainingArguments

from hf_finetune.core.data.collate import IGNORE_INDEX, padding_collator
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.trainable import TrainablePolicy, apply_causal_lm_policy
from hf_finetune.core.model.trainers import target_loss
from hf_finetune.methods.classify.label_token.encoding import encode_label_token, prompt_completion_dataset
from hf_finetune.methods.classify.label_token.scoring import LabelTokenTrainer, label_word_scores
from hf_finetune.methods.classify.label_token.words import resolve_label_words

LABEL_NAMES = ["neg", "pos"]


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
    return load_tokenizer(str(gpt2_tokenizer_dir))


@pytest.fixture(scope="module")
def rt_train(rt_folder) -> datasets.DatasetDict:
    """The first 300 real training examples (both classes: the file alternates blocks of them)."""
    rows = [json.loads(line) for line in (rt_folder / "train.jsonl").read_text(encoding="utf-8").split("\n") if line]
    picked = rows[:150] + rows[-150:]
    return datasets.DatasetDict({"train": datasets.Dataset.from_list(picked)})


def check_row(input_ids, labels, prefix_length, word_ids):
    """Exactly the label word's tokens carry targets, at the end, after text + separator."""
    assert labels[:prefix_length] == [IGNORE_INDEX] * prefix_length
    assert labels[prefix_length:] == word_ids
    assert input_ids[prefix_length:] == word_ids
    assert len(input_ids) == len(labels) == prefix_length + len(word_ids)


def test_default_keeps_whole_texts_and_targets_only_label_tokens(tokenizer, rt_train):
    words = resolve_label_words(tokenizer, LABEL_NAMES)
    assert words.separator_ids == [tokenizer.eos_token_id]
    encoded, truncated = encode_label_token(rt_train, tokenizer, words, max_length=1024)
    assert truncated == 0
    for row, source in zip(encoded["train"], rt_train["train"]):
        text_ids = tokenizer(source["text"])["input_ids"]
        assert row["input_ids"][: len(text_ids)] == text_ids
        check_row(row["input_ids"], row["labels"], row["prefix_length"], words.token_ids[source["label"]])


def test_truncation_shortens_the_text_never_the_separator_or_label(tokenizer, rt_train):
    words = resolve_label_words(tokenizer, LABEL_NAMES, "negative review,positive review", separator=" Sentiment:")
    assert words.longest > 1 and len(words.separator_ids) > 1
    encoded, truncated = encode_label_token(rt_train, tokenizer, words, max_length=16)
    assert truncated > 50
    for row, source in zip(encoded["train"], rt_train["train"]):
        assert len(row["input_ids"]) <= 16
        assert row["input_ids"][row["prefix_length"] - len(words.separator_ids) : row["prefix_length"]] == (
            words.separator_ids
        )
        check_row(row["input_ids"], row["labels"], row["prefix_length"], words.token_ids[source["label"]])


def test_collator_pads_by_position_and_padding_never_carries_a_target(tokenizer, rt_train):
    words = resolve_label_words(tokenizer, LABEL_NAMES)
    encoded, _ = encode_label_token(rt_train, tokenizer, words, max_length=1024)
    features = [encoded["train"][i] for i in (0, 1, 2, 299)]
    batch = padding_collator(tokenizer)(features)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        # The separator is the end-of-text token, which is also the pad token: it is attended.
        assert batch["attention_mask"][row, :length].all()
        assert not batch["attention_mask"][row, length:].any()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        targets = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert targets == words.token_ids[feature["class_id"]]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("neg,", "is empty"),
        ("neg,neg", "tokenize to the same tokens"),
        ("neg,pos,meh", "3 label words for 2 classes"),
    ],
)
def test_bad_label_words_are_rejected(tokenizer, flag, message):
    with pytest.raises(UserError, match=message):
        resolve_label_words(tokenizer, LABEL_NAMES, flag)


def test_a_separator_that_merges_with_the_label_word_is_rejected(tokenizer):
    with pytest.raises(UserError, match="--separator ' Sentiment: '"):
        resolve_label_words(tokenizer, LABEL_NAMES, separator=" Sentiment: ")


def test_max_length_must_leave_room_for_text(tokenizer, rt_train):
    words = resolve_label_words(tokenizer, LABEL_NAMES)
    with pytest.raises(UserError, match="--max_length: 2 tokens leave no room"):
        encode_label_token(rt_train, tokenizer, words, max_length=2)


@pytest.mark.parametrize("separator", [None, " Sentiment:"])
def test_trl_prompt_completion_path_matches_own_path(tmp_path, tokenizer, tiny_gpt2, rt_train, separator):
    from trl import SFTConfig, SFTTrainer

    words = resolve_label_words(tokenizer, LABEL_NAMES, separator=separator)
    max_length = 20  # truncates many texts, so truncation is compared too
    own, truncated = encode_label_token(rt_train, tokenizer, words, max_length)
    assert truncated > 50
    trl_data = prompt_completion_dataset(rt_train["train"], tokenizer, words, max_length)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_gpt2),
        args=SFTConfig(
            output_dir=str(tmp_path),
            completion_only_loss=True,
            max_length=None,  # TRL truncates the whole sequence (the label too): the prompt is cut instead
            dataset_text_field="text",
            bf16=False,
            gradient_checkpointing=False,
            report_to="none",
        ),
        train_dataset=trl_data,
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(own["train"])
    for theirs, ours in zip(prepared, own["train"]):
        assert theirs["input_ids"] == ours["input_ids"]
        assert theirs["labels"] == ours["labels"]


def test_target_loss_equals_the_full_logits_loss(tokenizer, tiny_gpt2, rt_train):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    words = resolve_label_words(tokenizer, LABEL_NAMES, "negative review,positive review")
    encoded, _ = encode_label_token(rt_train, tokenizer, words, max_length=1024)
    batch = padding_collator(tokenizer)([encoded["train"][i] for i in range(0, 300, 37)])
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        loss_sum, count = target_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert count == int((batch["labels"] != IGNORE_INDEX).sum())
    torch.testing.assert_close(loss_sum / count, full.loss, rtol=1e-5, atol=1e-5)


def test_label_word_scores_equal_full_logits_scores(tokenizer, tiny_gpt2, rt_train):
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2).eval()
    for flag in (None, "bad film,good film"):
        words = resolve_label_words(tokenizer, LABEL_NAMES, flag)
        encoded, _ = encode_label_token(rt_train, tokenizer, words, max_length=1024)
        features = [encoded["train"][i] for i in (3, 140, 200)]
        batch = padding_collator(tokenizer)(features)
        with torch.no_grad():
            scores, best_next = label_word_scores(
                model, batch["input_ids"], batch["prefix_length"], words, tokenizer.pad_token_id
            )
            for row, feature in enumerate(features):
                prefix = feature["input_ids"][: feature["prefix_length"]]
                for index, word in enumerate(words.token_ids):
                    log_probs = model(input_ids=torch.tensor([prefix + word])).logits[0].log_softmax(-1)
                    expected = sum(float(log_probs[len(prefix) - 1 + k, token]) for k, token in enumerate(word))
                    assert scores[row, index].item() == pytest.approx(expected, abs=1e-4)
                    assert int(best_next[row]) == int(log_probs[len(prefix) - 1].argmax())


def test_last_block_freezes_a_tied_head_and_trains_an_untied_one():
    tied = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64))
    description = apply_causal_lm_policy(tied, TrainablePolicy.parse("last_block"))
    assert "frozen" in description
    assert not tied.get_input_embeddings().weight.requires_grad
    assert not tied.get_output_embeddings().weight.requires_grad
    assert all(p.requires_grad for p in tied.transformer.h[-1].parameters())
    assert tied.transformer.ln_f.weight.requires_grad
    assert not any(p.requires_grad for p in tied.transformer.h[0].parameters())

    untied = GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64, tie_word_embeddings=False)
    )
    apply_causal_lm_policy(untied, TrainablePolicy.parse("last_block"))
    assert untied.get_output_embeddings().weight.requires_grad
    assert not untied.get_input_embeddings().weight.requires_grad


def test_gradient_checkpointing_with_frozen_parameters_trains_the_last_block(tmp_path, tokenizer, tiny_gpt2, rt_train):
    from hf_finetune.core.run.preflight import settle_training_args

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    apply_causal_lm_policy(model, TrainablePolicy.parse("last_block"))
    words = resolve_label_words(tokenizer, LABEL_NAMES)
    encoded, _ = encode_label_token(rt_train, tokenizer, words, max_length=1024)
    args = TrainingArguments(
        output_dir=str(tmp_path), gradient_checkpointing=True, max_steps=2, per_device_train_batch_size=4,
        report_to="none", save_strategy="no", remove_unused_columns=False, use_cpu=True,
    )
    settle_training_args(args)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    trainer = LabelTokenTrainer(
        model=model, args=args, train_dataset=encoded["train"], processing_class=tokenizer,
        data_collator=padding_collator(tokenizer), label_words=words,
        pad_token_id=tokenizer.pad_token_id,
    )
    trainer.train()
    assert model.is_gradient_checkpointing
    changed = [name for name, p in model.named_parameters() if name in before and not torch.equal(before[name], p)]
    assert any(".h.1." in name for name in changed)


def test_train_loss_is_the_mean_training_loss_and_the_training_split_loss_has_its_own_key(tmp_path, tiny_gpt2,
                                                                                          rt_train, one_thread):
    """all_results.json's train_loss means Trainer's mean loss over the run, as in every method; the loss the
    final evaluation measures on the training split is train_split_loss (a train_ prefix once overwrote it)."""
    from hf_finetune import classify

    data = tmp_path / "data"
    data.mkdir()
    rows = list(rt_train["train"])
    for name, picked in (("train", rows[::25]), ("validation", rows[1::50]), ("test", rows[2::50])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in picked), encoding="utf-8")
    output = tmp_path / "run"
    classify.main(["--dataset", str(data), "--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output),
                   "--class_names", "neg,pos", "--trainable", "all", "--learning_rate", "1e-3", "--max_steps", "3",
                   "--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_strategy", "no",
                   "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "true"])  # fmt: skip
    results = json.loads((output / "all_results.json").read_text())
    step_losses = [point["train_loss"] for point in results["history"] if "train_loss" in point]
    assert len(step_losses) == 3
    assert results["train_loss"] == pytest.approx(sum(step_losses) / 3, rel=1e-6)
    assert results["train_split_loss"] > 0 and results["train_split_loss"] != pytest.approx(results["train_loss"])
    assert {"eval_loss", "test_loss", "train_accuracy", "test_accuracy"} <= set(results)
