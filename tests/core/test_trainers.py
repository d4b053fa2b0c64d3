"""The Trainer every method shares: how a classifier's loss is averaged."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainingArguments

from hf_finetune.core.lora import LoraArguments, apply_lora
from hf_finetune.core.modeling import load_classifier, load_tokenizer
from hf_finetune.core.trainers import OrderedEvalTrainer

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
