"""Real DDP: two CPU processes (gloo) train the spam recipe together and leave one run folder."""

from __future__ import annotations

import json
import math
import sys

import pytest

from conftest import PROJECT, run_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, tiny_gpt2, sms_zip):
    workdir = tmp_path_factory.mktemp("ddp")
    output = workdir / "spam-ddp"
    result = run_command(
        [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
            "--num_processes", "2", "--num_cpu_threads_per_process", "1",
            str(PROJECT / "recipes" / "spam.py"),
            "--model_name_or_path", str(tiny_gpt2),
            "--dataset", str(sms_zip),
            "--trainable", "all",
            "--learning_rate", "1e-3",
            "--num_train_epochs", "1",
            "--max_length", "64",
            "--eval_steps", "1000",
            "--output_dir", str(output),
        ],
        cwd=workdir,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, output, result


def test_two_processes_train_as_one_data_parallel_job(ddp_run):
    _, output, result = ddp_run
    # One plan, printed by the main process, for a world of two.
    assert result.stdout.count("plan:") == 1
    assert "x2" in result.stdout.split("plan:")[1].split("output")[0]
    # Each step consumes 2 x 8 examples, so one epoch over 1045 texts is ceil(1045/16) steps.
    checkpoints = sorted(path.name for path in output.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{math.ceil(1045 / 16)}"]


def test_one_run_folder_written_once(ddp_run):
    workdir, output, _ = ddp_run
    assert [path.name for path in workdir.iterdir()] == [output.name]
    for name in ("all_results.json", "report.md", "config.yaml", "loss.png", "accuracy.png", "model.safetensors"):
        assert (output / name).is_file(), name
    assert not list(output.glob(".*.tmp")), "a half-written file was left behind"


def test_metrics_are_sane_and_cover_every_example_once(ddp_run):
    _, output, _ = ddp_run
    results = json.loads((output / "all_results.json").read_text())
    # Gathering across processes must neither drop nor duplicate examples (sampler padding).
    sizes = {"train": 1045, "eval": 149, "test": 300}
    for prefix, size in sizes.items():
        assert sum(map(sum, results[f"{prefix}_confusion_matrix"])) == size
    assert math.isfinite(results["train_loss"])
    assert results["test_accuracy"] > 0.8  # chance is 0.5 on the balanced test split
    assert results["history"], "no logged points"


def test_the_ddp_model_predicts(ddp_run):
    _, output, _ = ddp_run
    result = run_command([sys.executable, "-m", "hf_finetune.predict", str(output), "See you at 6?", "--json"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["label"] in ("ham", "spam")
