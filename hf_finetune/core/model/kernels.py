"""Faster equivalents of a model's slow modules, swapped in for training: the same function in
fewer kernels, nothing saved differently (the model's config keeps its own names).

GPT-2's `gelu_new` (transformers' NewGELUActivation) runs as Python: pow, mul, add, tanh, mul,
each a pass over the MLP's 4 x width activations, forward and backward. PyTorch's
`gelu(approximate="tanh")` is the same formula in one kernel (transformers' GELUTanh); the outputs
agree to within float rounding (2e-7 in fp32).
"""

from __future__ import annotations

from torch import nn
from transformers.activations import GELUTanh, NewGELUActivation


def fuse_activations(model: nn.Module) -> int:
    """Replace every gelu_new module of `model` by the one-kernel tanh GELU; returns how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
                swapped += 1
    return swapped
