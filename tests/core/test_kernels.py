"""Faster equivalents swapped in for training: GPT-2's gelu_new as one kernel, the same function."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.activations import GELUTanh, NewGELUActivation

from hf_finetune.core.model.kernels import frozen_weights_cast_once, fuse_activations


def test_gelu_new_becomes_one_kernel_with_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=60, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    plain = GPT2LMHeadModel(config).eval()
    fused = GPT2LMHeadModel(config).eval()
    fused.load_state_dict(plain.state_dict())
    assert fuse_activations(fused) == 2  # one per block
    assert not any(isinstance(module, NewGELUActivation) for module in fused.modules())
    assert sum(isinstance(module, GELUTanh) for module in fused.modules()) == 2
    assert fused.config.activation_function == "gelu_new", "the saved config keeps its own name"
    input_ids = torch.randint(0, 60, (2, 7))
    expected, got = plain(input_ids=input_ids).logits, fused(input_ids=input_ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    expected.sum().backward()
    got.sum().backward()
    for (name, parameter), reference in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(parameter.grad, reference.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert fuse_activations(fused) == 0  # nothing left to swap


def test_frozen_weights_cast_once_give_autocasts_results_and_go_afterwards():
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    from hf_finetune.core.model.kernels import FrozenWeightCasts

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), Conv1D(8, 32), nn.Linear(8, 5, bias=False))
    for parameter in [*model[0].parameters(), *model[2].parameters()]:
        parameter.requires_grad_(False)  # the Conv1D in the middle trains
    hidden = torch.randn(3, 4, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(hidden)
    expected.float().sum().backward()
    expected_gradients = [hidden.grad.clone(), model[1].weight.grad.clone()]
    hidden.grad, model[1].weight.grad = None, None
    with frozen_weights_cast_once([model, None], torch.device("cpu"), torch.bfloat16):
        assert [type(m).__name__ for m in model if "forward" in m.__dict__] == ["Linear", "Linear"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(hidden)
        assert model[0]._low_precision[1].dtype == torch.bfloat16  # made once, kept for the next step
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(model(hidden), got)
        assert torch.equal(model(hidden), model[2](model[1](model[0].__class__.forward(model[0], hidden))))  # no autocast: fp32
    assert torch.equal(got, expected) and got.dtype == torch.bfloat16  # bit for bit what autocast computes
    got.float().sum().backward()
    torch.testing.assert_close(hidden.grad, expected_gradients[0])
    torch.testing.assert_close(model[1].weight.grad, expected_gradients[1])
    assert not any("forward" in m.__dict__ or "_low_precision" in m.__dict__ for m in model)  # gone afterwards
    assert FrozenWeightCasts(model, torch.device("cuda"), torch.bfloat16).modules == []  # CPUs only
    assert FrozenWeightCasts(model, torch.device("cpu"), torch.float32).modules == []  # nothing to cast in fp32


def test_a_cast_made_during_generation_serves_the_training_steps_after_it():
    """The low-precision copy made first under inference_mode (an evaluation's generation before
    training) must not be an inference tensor, which a training step cannot save for backward."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 16))
    model[1].requires_grad_(False)  # its input needs a gradient, so its weight is saved for backward
    hidden = torch.randn(2, 16)
    with frozen_weights_cast_once([model], torch.device("cpu"), torch.bfloat16):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(hidden)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(hidden).float().sum().backward()
    assert model[0].weight.grad is not None
