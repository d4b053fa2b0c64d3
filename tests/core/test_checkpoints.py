"""Which checkpoint a run resumes from: the newest complete one, each newer one skipped with its
reason; an incomplete one named on the command line is refused before anything loads; a write
that fails for lack of space is recognised whichever library raised it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from transformers import TrainingArguments

from hf_finetune.core.errors import run_cli
from hf_finetune.core.run import checkpoints
from hf_finetune.core.run.checkpoints import (
    checkpoint_problem,
    newest_complete_checkpoint,
    write_failure,
)
from hf_finetune.core.run.training import resolve_resume
from hf_finetune.methods.classify.head.train import main
from hf_finetune.recipes.spam import DEFAULTS


def complete_checkpoint(folder: Path) -> Path:
    """The files Trainer writes into a checkpoint, small."""
    folder.mkdir(parents=True)
    save_file({"weight": torch.arange(64, dtype=torch.float32)}, folder / "model.safetensors")
    torch.save({"state": {0: torch.ones(64)}}, folder / "optimizer.pt")
    torch.save({"last_epoch": 3}, folder / "scheduler.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    torch.save({"seed": 1}, folder / "training_args.bin")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": int(folder.name.split("-")[1])}))
    return folder


def cut(file: Path, keep: float = 0.5) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """checkpoint-10 complete; each newer one broken the way a kill or a full disk leaves it."""
    output = tmp_path / "run"
    complete_checkpoint(output / "checkpoint-10")
    cut(complete_checkpoint(output / "checkpoint-20") / "model.safetensors")
    (complete_checkpoint(output / "checkpoint-30") / "trainer_state.json").unlink()
    cut(complete_checkpoint(output / "checkpoint-40") / "trainer_state.json")
    cut(complete_checkpoint(output / "checkpoint-50") / "optimizer.pt", keep=0.9)
    return output


def test_a_complete_checkpoint_has_no_problem(tmp_path):
    assert checkpoint_problem(complete_checkpoint(tmp_path / "checkpoint-5")) is None


def test_a_checkpoint_without_its_random_state_is_incomplete(tmp_path):
    (complete_checkpoint(tmp_path / "checkpoint-5") / "rng_state.pth").unlink()
    assert checkpoint_problem(tmp_path / "checkpoint-5") == "its random state (rng_state.pth) is missing"


def test_resume_auto_takes_the_newest_complete_checkpoint_and_says_why_it_skipped_each_newer_one(run_folder, capsys):
    args = TrainingArguments(output_dir=str(run_folder), resume_from_checkpoint="auto", report_to="none", use_cpu=True)
    assert resolve_resume(args) == str(run_folder / "checkpoint-10")
    assert capsys.readouterr().out.splitlines() == [
        "resume: skipping checkpoint-50 (optimizer.pt is truncated)",
        "resume: skipping checkpoint-40 (trainer_state.json is truncated)",
        "resume: skipping checkpoint-30 (no trainer_state.json: its save was cut off)",
        "resume: skipping checkpoint-20 (model.safetensors is truncated)",
        f"resume: continuing from {run_folder / 'checkpoint-10'}",
    ]


def test_no_complete_checkpoint_means_starting_over_and_saying_so(run_folder, capsys):
    cut(run_folder / "checkpoint-10" / "model.safetensors", keep=0.01)
    assert newest_complete_checkpoint(run_folder) == (None, [
        "checkpoint-50 (optimizer.pt is truncated)", "checkpoint-40 (trainer_state.json is truncated)",
        "checkpoint-30 (no trainer_state.json: its save was cut off)", "checkpoint-20 (model.safetensors is truncated)",
        "checkpoint-10 (model.safetensors is truncated)",
    ])  # fmt: skip


def test_a_missing_shard_makes_a_checkpoint_incomplete(tmp_path):
    folder = complete_checkpoint(tmp_path / "checkpoint-1")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert checkpoint_problem(folder) == "model-00002-of-00002.safetensors is missing"


def test_resume_from_an_incomplete_checkpoint_is_refused_before_the_data_loads(
    run_folder, tiny_gpt2, sms_zip, capsys, monkeypatch
):
    def loaded(*args, **kwargs):
        raise AssertionError("the data loaded: the broken checkpoint was found too late")

    monkeypatch.setattr("hf_finetune.methods.classify.head.train.load_classification_data", loaded)
    argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--output_dir", str(run_folder),
            "--resume_from_checkpoint", str(run_folder / "checkpoint-20")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert error.splitlines() == [
        (
            f"error: --resume_from_checkpoint: {run_folder / 'checkpoint-20'} is not a complete checkpoint "
            f"(model.safetensors is truncated); pass {run_folder / 'checkpoint-10'}, the newest complete one, or auto."
        )
    ]
    assert sorted(path.name for path in run_folder.iterdir()) == [f"checkpoint-{step}" for step in (10, 20, 30, 40, 50)]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is used up"),
        (OSError(errno.EFBIG, "File too large"), "a file grew past the file size limit"),
        (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"), "the disk is full"),
        (OSError(errno.EACCES, "Permission denied"), None),
        (SafetensorError("Error while deserializing header: header too small"), None),
        (RuntimeError("CUDA out of memory"), None),
    ],
)
def test_a_write_that_failed_for_lack_of_space_is_recognised(error, cause, tmp_path):
    assert write_failure(error, tmp_path) == cause


@pytest.mark.parametrize(("free", "cause"), [(1024, "the disk is full"), (50 * 2**30, None)])
def test_torch_save_failures_count_as_a_full_disk_only_when_the_disk_is_full(free, cause, tmp_path, monkeypatch):
    error = RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: type("Usage", (), {"free": free})())
    assert write_failure(error, tmp_path) == cause
