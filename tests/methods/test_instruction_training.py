"""The instruction trainer's shortcut (LM head only where labels are) gives the model's own loss and gradients."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.trainers import TargetLossTrainer
from hf_finetune.methods.instruction.encoding import encode_example

ENTRIES = [
    {"instruction": "Name the capital of France.", "input": "", "output": "Paris."},
    {"instruction": "Add the numbers.", "input": "2 and 3 and 4", "output": "The sum of 2, 3 and 4 is 9."},
]


@pytest.mark.parametrize("mask_prompt", [False, True])
def test_label_only_head_matches_the_full_model_loss(tmp_path, tiny_gpt2, mask_prompt):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    features = []
    for entry in ENTRIES:
        input_ids, labels, _ = encode_example(tokenizer, entry, 1024, mask_prompt)
        features.append({"input_ids": input_ids, "labels": labels})
    batch = padding_collator(tokenizer)(features)
    # prediction_loss_only, as the instruction recipe sets it: evaluation needs the loss only
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, prediction_loss_only=True)
    trainer = TargetLossTrainer(model=model, args=args, processing_class=tokenizer)

    expected = model(**batch).loss
    expected.backward()
    expected_grad = model.transformer.h[0].attn.c_attn.weight.grad.clone()
    model.zero_grad()

    loss = trainer.compute_loss(model, batch)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(model.transformer.h[0].attn.c_attn.weight.grad, expected_grad, atol=1e-6)
    loss_again, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    assert set(outputs) == {"loss"} and loss_again.item() == pytest.approx(expected.item(), rel=1e-5)


def test_label_only_head_runs_through_lora_adapters(tmp_path, tiny_gpt2):
    from hf_finetune.core.model.lora import LoraArguments, apply_lora

    tokenizer = load_tokenizer(str(tiny_gpt2))
    torch.manual_seed(0)
    model = apply_lora(AutoModelForCausalLM.from_pretrained(tiny_gpt2), LoraArguments(lora_r=4, lora_dropout=0.0))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # zero at init: give the adapters an effect the loss can see
            torch.nn.init.normal_(parameter, std=0.02)
    features = [dict(zip(("input_ids", "labels"), encode_example(tokenizer, entry, 1024, True)[:2])) for entry in ENTRIES]
    batch = padding_collator(tokenizer)(features)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, prediction_loss_only=True)
    trainer = TargetLossTrainer(model=model, args=args, processing_class=tokenizer)

    expected = model(**batch).loss
    expected.backward()
    lora_a = next(p for name, p in model.named_parameters() if "lora_A" in name)
    expected_grad = lora_a.grad.clone()
    model.zero_grad()

    loss = trainer.compute_loss(model, batch)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(lora_a.grad, expected_grad, rtol=1e-4, atol=1e-7)
    _, outputs = trainer.compute_loss(model, batch, return_outputs=True)
    assert set(outputs) == {"loss"}, "the shortcut, not the model's full-logits forward, computed the loss"


def test_the_trained_loss_is_the_models_mean_over_its_targets(tmp_path, tiny_gpt2):
    """Trainer normalises by its count of targets: it must count after the causal shift, as the loss does."""
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    features = [dict(zip(("input_ids", "labels"), encode_example(tokenizer, entry, 1024, False)[:2])) for entry in ENTRIES]
    batch = padding_collator(tokenizer)(features)
    assert (batch["labels"][:, 0] != -100).all()  # unmasked prompts: every row starts with a label
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = TargetLossTrainer(model=model, args=args, processing_class=tokenizer)
    num_items = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    step_loss = trainer.training_step(model, batch, num_items_in_batch=num_items)
    assert step_loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
