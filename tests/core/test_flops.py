"""Model FLOPs counted per training step (against a hand count and PyTorch's own counter), the
matmul peak (vendor table, measured and cached), and the run's utilization figures."""

from __future__ import annotations

import json

import pytest
import torch
from test_run import method_for
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForSequenceClassification, GPT2Config, GPT2LMHeadModel

from hf_finetune.core.model import flops
from hf_finetune.core.model.flops import FlopCounter, matmul_peak
from hf_finetune.core.model.frozen_cache import plan_frozen_cache
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy, transformer_blocks
from hf_finetune.core.run.skeleton import run

WIDTH, VOCAB = 16, 60
# Per real token and block: c_attn 16x48, attn.c_proj 16x16, c_fc 16x64, mlp.c_proj 64x16, 2 FLOPs each.
BLOCK_PER_TOKEN = 2 * (16 * 48 + 16 * 16 + 16 * 64 + 64 * 16)  # 6144
ATTENTION_PER_SQUARED_LENGTH = 2 * 2 * WIDTH  # scores and weighted values
LM_HEAD_PER_TOKEN = 2 * WIDTH * VOCAB
CLASS_HEAD_PER_TOKEN = 2 * WIDTH * 2


def tiny_config(**kwargs) -> GPT2Config:
    return GPT2Config(vocab_size=VOCAB, n_embd=WIDTH, n_layer=2, n_head=2, n_positions=32, pad_token_id=0,
                      bos_token_id=1, eos_token_id=1, tie_word_embeddings=False, **kwargs)  # fmt: skip


def padded_batch():
    """Two texts of 5 and 3 real tokens, the second right-padded to 5."""
    input_ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]])
    return input_ids, (input_ids != 0).long()


def counted_step(model, input_ids, mask, counter=None, loss_of=None) -> FlopCounter:
    """The FLOPs the counter finds in one forward + backward."""
    counter = counter or FlopCounter().attach(model)
    counter.counting = True
    output = model(input_ids=input_ids, attention_mask=mask, labels=loss_of(input_ids) if loss_of else None)
    output.loss.backward()
    counter.counting = False
    return counter


def test_every_layer_training_counts_three_times_the_forward_at_the_real_tokens():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config())
    input_ids, mask = padded_batch()
    counter = counted_step(model, input_ids, mask, loss_of=lambda ids: ids.masked_fill(ids == 0, -100))
    tokens, squared = 5 + 3, 5**2 + 3**2  # the padding counts nothing
    forward = 2 * (BLOCK_PER_TOKEN * tokens + ATTENTION_PER_SQUARED_LENGTH * squared) + LM_HEAD_PER_TOKEN * tokens
    assert counter.flops == 3 * forward  # backward: the input's and the weight's gradient of every matmul


def test_a_frozen_block_before_the_trainable_one_costs_its_forward_only():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config(num_labels=2))
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    input_ids, mask = padded_batch()
    counter = counted_step(model, input_ids, mask, loss_of=lambda ids: torch.tensor([0, 1]))
    tokens, squared = 8, 34
    block = BLOCK_PER_TOKEN * tokens + ATTENTION_PER_SQUARED_LENGTH * squared
    # block 1: forward only; block 2 and the class head (at every real position): forward + 2 x backward
    assert counter.flops == block + 3 * block + 3 * CLASS_HEAD_PER_TOKEN * tokens


def test_a_block_served_from_the_frozen_cache_costs_nothing(tmp_path):
    from transformers import TrainingArguments

    from hf_finetune.core.arguments import RunArguments

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_config(num_labels=2))
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    input_ids, mask = padded_batch()
    sequences = [[5, 6, 7, 8, 9], [10, 11, 12]]
    cache = plan_frozen_cache(model, sequences, TrainablePolicy.parse("last_block"), False, RunArguments(),
                              TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)).cache  # fmt: skip
    cache.build(model, torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False))
    counter = FlopCounter().attach(model)
    cache.attach(model)
    try:
        counted_step(model, input_ids, mask, counter, loss_of=lambda ids: torch.tensor([0, 1]))
    finally:
        cache.detach()
    assert cache.served == 1
    block = BLOCK_PER_TOKEN * 8 + ATTENTION_PER_SQUARED_LENGTH * 34
    assert counter.flops == 3 * block + 3 * CLASS_HEAD_PER_TOKEN * 8


@pytest.mark.parametrize("trainable", ["all", "last_block"])
def test_the_count_agrees_with_pytorchs_flop_counter_without_padding(trainable):
    """FlopCounterMode counts the matmuls autograd really runs: a frozen block's missing weight gradients too."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config())
    if trainable != "all":
        for parameter in [*model.transformer.wte.parameters(), *model.transformer.wpe.parameters(),
                          *transformer_blocks(model)[0].parameters()]:  # fmt: skip
            parameter.requires_grad_(False)
    input_ids = torch.randint(1, VOCAB, (3, 7))
    with FlopCounterMode(display=False) as reference:
        counter = counted_step(model, input_ids, torch.ones_like(input_ids), loss_of=lambda ids: ids)
    assert counter.flops == reference.get_total_flops()


def test_the_lm_head_counts_only_where_it_runs():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config())
    input_ids, mask = padded_batch()
    keep = torch.zeros_like(input_ids, dtype=torch.bool)
    keep[0, 3] = keep[1, 1] = True  # two target positions
    counter = FlopCounter().attach(model)
    counter.counting = True
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep).logits
    logits.sum().backward()
    blocks = 2 * (BLOCK_PER_TOKEN * 8 + ATTENTION_PER_SQUARED_LENGTH * 34)
    assert counter.flops == 3 * (blocks + LM_HEAD_PER_TOKEN * 2)


def test_recomputed_activations_and_passes_outside_the_steps_are_not_model_flops():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config())
    input_ids, mask = padded_batch()
    plain = counted_step(model, input_ids, mask, loss_of=lambda ids: ids).flops
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    assert model.transformer.gradient_checkpointing and checkpoint is not None
    assert counted_step(model, input_ids, mask, loss_of=lambda ids: ids).flops == plain
    counter = FlopCounter().attach(model)  # counting off: an evaluation between steps
    with torch.no_grad():
        model(input_ids=input_ids, attention_mask=mask)
    assert counter.flops == 0


def test_known_gpus_take_the_vendor_peak_and_cpus_are_measured_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_FINETUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    peak = matmul_peak(torch.device("cuda"), torch.bfloat16)
    assert peak.flops_per_second == 989.4e12 and "vendor" in peak.source
    measured = []
    monkeypatch.setattr(flops, "measure_matmul", lambda device, dtype: measured.append(dtype) or 123e9)
    monkeypatch.setattr(flops.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    first = matmul_peak(torch.device("cpu"), torch.float32)
    again = matmul_peak(torch.device("cpu"), torch.float32)
    assert measured == [torch.float32] and first.flops_per_second == again.flops_per_second == 123e9
    assert "cached" in again.source and json.loads((tmp_path / "matmul_peak.json").read_text())
    assert first.line().startswith("123.0 GFLOP/s fp32 matmul (measured on ")


def test_a_peak_measured_on_a_busy_machine_is_measured_again_when_quieter(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_FINETUNE_CACHE", str(tmp_path))
    speeds = iter([50e9, 120e9, 90e9])
    monkeypatch.setattr(flops, "measure_matmul", lambda device, dtype: next(speeds))
    monkeypatch.setattr(flops.os, "getloadavg", lambda: (99.0, 0.0, 0.0))
    assert matmul_peak(torch.device("cpu"), torch.bfloat16).flops_per_second == 50e9
    monkeypatch.setattr(flops.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert matmul_peak(torch.device("cpu"), torch.bfloat16).flops_per_second == 120e9
    assert matmul_peak(torch.device("cpu"), torch.bfloat16).flops_per_second == 120e9  # quiet: cached


def test_a_run_reports_its_model_flops_and_utilization(tiny_gpt2, tmp_path, capsys):
    results = run(method_for(tiny_gpt2, tmp_path / "run"))
    assert 0 < results["model_flops_utilization"] <= 1
    assert results["model_flops"] > 0 and results["training_steps_timed"] == 2
    assert results["model_flops_utilization"] == pytest.approx(
        results["model_flops"] / (results["training_step_seconds"] * results["peak_flops_per_second"]), rel=1e-2)
    out = capsys.readouterr().out
    assert " matmul (measured on " in out.split("summary:")[0]  # the plan's peak line
    assert f"{results['model_flops_utilization']:.1%} of the fp32 matmul peak" in out.split("summary:")[1]
