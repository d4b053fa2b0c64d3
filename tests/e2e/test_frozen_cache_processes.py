"""--cache_frozen under several processes: each computes a share of the sequences and all gather
the whole cache, equal to what one process computes alone; a 2-process DDP spam run is served
from it (no forward call ran the whole model)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import PROJECT, run_command
from transformers import AutoModelForSequenceClassification, GPT2Config, TrainingArguments

from hf_finetune.core.arguments import RunArguments
from hf_finetune.core.model.frozen_cache import plan_frozen_cache
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy

SEQUENCES = [[(7 * i + j) % 50 + 1 for j in range(3 + i % 9)] for i in range(23)]


def tiny_classifier():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=60, n_embd=16, n_layer=3, n_head=2, n_positions=32, num_labels=2, pad_token_id=0)
    model = AutoModelForSequenceClassification.from_config(config)
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    return model


def built_cache(tmp_path, dtype="float32"):
    model = tiny_classifier()
    cache = plan_frozen_cache(model, SEQUENCES, TrainablePolicy.parse("last_block"), False,
                              RunArguments(cache_frozen_dtype=dtype),
                              TrainingArguments(output_dir=str(tmp_path), report_to="none")).cache  # fmt: skip
    cache.build(model, torch.device("cpu"), lambda: torch.autocast("cpu", enabled=False), tokens_per_batch=4 * 8)
    return cache


def build_in_process(rank: int, world: int, store: str, tmp_path, dtype: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cache = built_cache(tmp_path, dtype)
        torch.save({"index": cache.index, "states": cache.states}, tmp_path / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# Two-byte caches too: gloo gathers no int16 (a bf16 cache, the default on a CPU with native bf16,
# once failed there with "Invalid scalar type").
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_processes_gather_the_cache_one_process_computes(tmp_path, dtype):
    mp.spawn(build_in_process, args=(2, str(tmp_path / "store"), tmp_path, dtype), nprocs=2, join=True)
    alone = built_cache(tmp_path, dtype)
    for rank in range(2):
        gathered = torch.load(tmp_path / f"rank{rank}.pt")
        assert gathered["index"].keys() == alone.index.keys() == {tuple(ids) for ids in SEQUENCES}
        for sequence, (start, length) in alone.index.items():
            other_start, other_length = gathered["index"][sequence]
            assert other_length == length == len(sequence)
            assert gathered["states"].dtype == getattr(torch, dtype)
            torch.testing.assert_close(gathered["states"][other_start : other_start + length], alone.states[start : start + length])


@pytest.mark.usefixtures("one_thread")
def test_a_ddp_spam_run_is_served_from_the_cache(tmp_path, tiny_gpt2, sms_zip):
    output = tmp_path / "spam-ddp-cached"
    result = run_command(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
         "--num_processes", "2", "--num_cpu_threads_per_process", "1", str(PROJECT / "recipes" / "spam.py"),
         "--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--max_steps", "6", "--max_length", "48",
         "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(output)],
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout.split("plan:")[1]
    assert "frozen cache" in plan and "the embeddings and block 1 of 2" in plan
    results = json.loads((output / "all_results.json").read_text())
    assert results["frozen_cache"] is True and results["frozen_cache_missed_calls"] == 0
    assert sum(map(sum, results["test_confusion_matrix"])) == 300
