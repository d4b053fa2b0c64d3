"""benchmarks/gpu_check.sh's CPU dry mode: every recipe a few steps, as on a GPU, so the script stays runnable."""

from __future__ import annotations

import re

from conftest import PROJECT, SHARED, run_command, shared_path


def test_the_dry_mode_runs_every_recipe_and_prints_its_figures(sms_zip, rt_folder, instruction_json):
    shared_path("models", "gpt2-tokenizer")
    result = run_command(["bash", "benchmarks/gpu_check.sh", "--dry", "--shared", str(SHARED)], cwd=PROJECT, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout.split("recipe       steps")[1]
    for recipe in ("spam", "classify", "instruction", "chat", "preference"):
        row = re.search(rf"^{recipe} +(\d+) +([\d.]+) +(\d+) +([\d.]+)% +(bf16|fp32) +([\d.]+)  process RSS$", table,
                        re.MULTILINE)  # fmt: skip
        assert row, f"{recipe}: {table}"
        steps, step_seconds, tokens_per_second, mfu = int(row[1]), float(row[2]), int(row[3]), float(row[4])
        assert steps == 2 and step_seconds > 0 and tokens_per_second > 0 and 0 < mfu <= 100
    assert "5 of 5 recipes ran" in result.stdout


def test_without_a_gpu_the_real_mode_says_so(sms_zip):
    result = run_command(["bash", "benchmarks/gpu_check.sh", "--recipes", "spam"], cwd=PROJECT, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2 and "no CUDA device here; run with --dry" in result.stderr
