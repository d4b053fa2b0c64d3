"""Faster equivalents of what a model runs, swapped in for training: the same results, less work;
nothing saved differently (the model's config and weights keep their own names and values).

- GPT-2's `gelu_new` (transformers' NewGELUActivation) runs as Python: pow, mul, add, tanh, mul,
  each a pass over the MLP's 4 x width activations, forward and backward. PyTorch's
  `gelu(approximate="tanh")` is the same formula in one kernel (transformers' GELUTanh); the
  outputs agree to within float rounding (2e-7 in fp32).
- Under mixed precision, autocast casts every weight a matmul uses to bf16/fp16 in every forward
  pass, and a frozen weight gets the same cast each time: GPT-2's 50257 x 768 LM head, tied to the
  frozen embeddings in the label-token method, costs about 50 ms a cast on one CPU core, where its
  matmul at a batch's 8 label positions takes 12 ms. `FrozenWeightCasts` casts each frozen weight
  once, when it is first used under autocast, and hands that copy to the matmul: the same bf16
  values autocast would compute, so the same results. On CPUs only (an accelerator casts fast, and
  its memory is the scarcer resource); the copies go when training and evaluation end.
"""

from __future__ import annotations

import types
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import GELUTanh, NewGELUActivation
from transformers.pytorch_utils import Conv1D


def fuse_activations(model: nn.Module) -> int:
    """Replace every gelu_new module of `model` by the one-kernel tanh GELU; returns how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
                swapped += 1
    return swapped


class FrozenWeightCasts:
    """Frozen linear layers (nn.Linear, GPT-2's Conv1D) of a model use a low-precision copy of their
    weights, made once, whenever autocast to that precision is on for their device."""

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype):
        self.device_type, self.dtype = device.type, dtype
        self.modules = []
        if device.type != "cpu" or dtype == torch.float32:
            return
        for module in model.modules():
            if type(module) in (nn.Linear, Conv1D) and not any(p.requires_grad for p in module.parameters()):
                module.forward = types.MethodType(self._forward, module)
                self.modules.append(module)

    def _forward(self, module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if not (torch.is_autocast_enabled(self.device_type) and torch.get_autocast_dtype(self.device_type) == self.dtype):
            return type(module).forward(module, hidden)
        copies = getattr(module, "_low_precision", None)
        if copies is None or copies[0] is not module.weight:  # made once, again only if the weight was replaced
            # Never an inference tensor (made during a generation), which a later training step could not save.
            with torch.inference_mode(False), torch.no_grad():
                bias = module.bias.to(self.dtype) if module.bias is not None else None
                copies = module._low_precision = (module.weight, module.weight.to(self.dtype), bias)
        _, weight, bias = copies
        hidden = hidden.to(self.dtype)
        with torch.autocast(self.device_type, enabled=False):  # the inputs are cast already, as autocast would
            if isinstance(module, Conv1D):
                shape = hidden.shape[:-1] + (module.nf,)
                flat = hidden.reshape(-1, hidden.shape[-1])
                return (torch.addmm(bias, flat, weight) if bias is not None else flat @ weight).view(shape)
            return F.linear(hidden, weight, bias)

    def detach(self) -> None:
        for module in self.modules:
            del module.forward
            module.__dict__.pop("_low_precision", None)
        self.modules = []


@contextmanager
def frozen_weights_cast_once(models, device: torch.device, dtype: torch.dtype):
    """`FrozenWeightCasts` on each of `models` (None skipped) for the time of the block."""
    casts = [FrozenWeightCasts(model, device, dtype) for model in models if isinstance(model, nn.Module)]
    try:
        yield
    finally:
        for cast in casts:
            cast.detach()
