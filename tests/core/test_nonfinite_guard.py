"""The non-finite gradient guard: stops or skips on NaN/inf in any trainable gradient, with one
host sync per optimizer step whatever the number of parameter tensors."""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from hf_finetune.core.model.callbacks import NonFiniteGuard, NonFiniteLoss


def model_with_gradients(poison: str | None = None) -> nn.Module:
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(10)])
    model[0].requires_grad_(False)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.ones_like(parameter)
    if poison is not None:
        model[7].bias.grad[2] = float(poison)
    return model


def guard_for(model, skip: bool) -> NonFiniteGuard:
    guard = NonFiniteGuard(skip)
    guard.on_train_begin(None, None, None, model=model)
    return guard


STATE = types.SimpleNamespace(global_step=4)
ARGS = types.SimpleNamespace(should_log=False)


def test_one_host_sync_for_all_gradients(monkeypatch):
    model = model_with_gradients()
    syncs = []
    for name in ("__bool__", "item"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, original=original, name=name: syncs.append(name) or original(self))
    guard_for(model, skip=False).on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())
    assert len(syncs) == 1  # 18 gradient tensors


@pytest.mark.parametrize("poison", ["nan", "inf", "-inf"])
def test_a_nonfinite_gradient_stops_with_the_step(poison):
    with pytest.raises(NonFiniteLoss, match="step 5"):
        guard_for(model_with_gradients(poison), skip=False).on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())


def test_skipping_zeroes_the_batch_gradients():
    model = model_with_gradients("nan")
    guard = guard_for(model, skip=True)
    guard.on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())
    assert guard.skipped == [5]
    assert all(p.grad.count_nonzero() == 0 for p in model.parameters() if p.grad is not None)


def test_finite_gradients_pass_untouched():
    model = model_with_gradients()
    guard_for(model, skip=True).on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())
    assert all(bool((p.grad == 1).all()) for p in model.parameters() if p.grad is not None)


class TrainerMeasuringNorms:
    """What the guard reads: Trainer's `_get_grad_norm`, called right before on_pre_optimizer_step."""

    def __init__(self, model):
        self.model = model

    def _get_grad_norm(self, model, grad_norm=None):
        return torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])


def guard_reading_norms(model, skip: bool) -> tuple[NonFiniteGuard, TrainerMeasuringNorms]:
    trainer = TrainerMeasuringNorms(model)
    guard = guard_for(model, skip).reading_norm_of(trainer)
    return guard, trainer


def test_a_finite_norm_from_the_trainer_spares_the_second_pass(monkeypatch):
    model = model_with_gradients()
    guard, trainer = guard_reading_norms(model, skip=False)
    monkeypatch.setattr("hf_finetune.core.model.callbacks.all_finite", lambda tensors: pytest.fail("a second pass"))
    trainer._get_grad_norm(model)
    guard.on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())
    assert guard.grad_norm is None  # read once, for its own step


@pytest.mark.parametrize("poison", ["nan", "inf"])
def test_a_nonfinite_norm_from_the_trainer_still_stops_with_the_step(poison):
    model = model_with_gradients(poison)
    guard, trainer = guard_reading_norms(model, skip=False)
    trainer._get_grad_norm(model)
    with pytest.raises(NonFiniteLoss, match="step 5"):
        guard.on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())


def test_a_norm_too_large_for_float32_with_finite_gradients_is_not_a_nan():
    model = model_with_gradients()
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.fill_(1e30)  # finite, but the sum of squares overflows
    guard, trainer = guard_reading_norms(model, skip=False)
    assert not torch.isfinite(trainer._get_grad_norm(model))
    guard.on_pre_optimizer_step(ARGS, STATE, types.SimpleNamespace())  # no NonFiniteLoss
