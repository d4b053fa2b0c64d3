"""Real DDP and FSDP2: two CPU processes (gloo) train the spam recipe together and leave one run folder."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
import yaml
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
    [device] = [line for line in result.stdout.split("plan:")[1].splitlines() if line.strip().startswith("device")]
    assert "x2" in device
    # Each step consumes 2 x 8 examples, so one epoch over 1045 texts is ceil(1045/16) steps.
    checkpoints = sorted(path.name for path in output.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{math.ceil(1045 / 16)}"]


def test_only_the_main_process_talks_to_the_console(ddp_run):
    _, output, result = ddp_run
    # transformers' load report (a warning) and its "Loading weights" bar, of either process: in
    # the main process's run.log, silenced on the other.
    assert "LOAD REPORT" not in result.stderr and "Loading weights" not in result.stderr, result.stderr[-3000:]
    assert (output / "run.log").read_text().count("LOAD REPORT") == 1
    assert "training: 100%" in result.stderr and result.stdout.count("summary:") == 1  # the main one's bar


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


# --- FSDP2 on CPU ----------------------------------------------------------------------------


def fsdp_cpu_config(folder) -> str:
    """The shipped fsdp.yaml, turned into 2 CPU processes in fp32."""
    config = yaml.safe_load((PROJECT / "accelerate_configs" / "fsdp.yaml").read_text())
    config.update(num_processes=2, use_cpu=True, mixed_precision="no", main_process_port=0)
    path = folder / "fsdp_cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fsdp2_with_a_frozen_body_trains_the_last_block_and_saves_a_full_model(tmp_path, tiny_gpt2, sms_zip):
    output = tmp_path / "spam-fsdp"
    result = run_command(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", fsdp_cpu_config(tmp_path),
         "--num_cpu_threads_per_process", "1", str(PROJECT / "tests" / "fsdp_cpu_launch.py"),
         str(PROJECT / "recipes" / "spam.py"), "--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip),
         "--max_steps", "6", "--max_length", "48", "--eval_strategy", "no", "--save_strategy", "no",
         "--output_dir", str(output)],
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [line for line in result.stdout.splitlines() if line.startswith("fsdp check:")]
    assert len(reports) == 2 and all("FSDP" in line for line in reports), reports
    for line in reports:
        shards, total = map(int, line.split(", ")[-1].split(" parameters")[0].split(" of "))
        assert shards == total > 0, line  # every parameter, frozen or not, is sharded
    # --trainable last_block under FSDP: the frozen body stays as it was, the last block learns.
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    before = dict(AutoModelForCausalLM.from_pretrained(tiny_gpt2).named_parameters())
    after = dict(AutoModelForSequenceClassification.from_pretrained(output).named_parameters())
    assert torch.equal(before["transformer.wte.weight"], after["transformer.wte.weight"])
    assert all(torch.equal(before[name], after[name]) for name in before if ".h.0." in name)
    assert any(not torch.equal(before[name], after[name]) for name in before if ".h.1." in name)
    results = json.loads((output / "all_results.json").read_text())
    assert sum(map(sum, results["test_confusion_matrix"])) == 300 and math.isfinite(results["train_loss"])


def test_fsdp_without_a_gpu_is_refused_instead_of_silently_running_ddp(tmp_path, monkeypatch, tiny_gpt2, sms_zip):
    from hf_finetune.core.errors import UserError
    from hf_finetune.core.run import preflight as training
    from hf_finetune.methods.classify.head import train as classification

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` with fsdp.yaml exports
    monkeypatch.setattr(training, "accelerator_available", lambda: False)
    with pytest.raises(UserError, match="FSDP .* needs GPUs.*accelerate_configs/cpu.yaml"):
        classification.main(["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip),
                             "--output_dir", str(tmp_path / "run")])  # fmt: skip
    assert not (tmp_path / "run").exists()
