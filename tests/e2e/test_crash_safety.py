"""Crash safety on tiny runs: a kill in the middle of a checkpoint write, a full disk, and two runs
into one output folder. Each leaves a folder the next run can trust, and says what happened in one
sentence."""

from __future__ import annotations

import csv
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PROJECT, run_command
from safetensors import SafetensorError

from hf_finetune.classify import main
from hf_finetune.core.errors import run_cli
from hf_finetune.core.report.files import FINISHED_MARKER
from hf_finetune.core.run.lock import LOCK_NAME

# Stands in for the classify command, but dies by SIGKILL half-way through writing checkpoint-4's optimizer.pt
# (checkpoint-2 is complete by then).
KILLED_WHILE_WRITING_CHECKPOINT_4 = """
import os, runpy, signal, sys, torch
real_save = torch.save
def save(obj, file, *args, **kwargs):
    if str(file).endswith(os.path.join("checkpoint-4", "optimizer.pt")):
        with open(file, "wb") as partial:
            partial.write(b"PK" * 4096)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, file, *args, **kwargs)
torch.save = save
sys.argv[0] = "hf_finetune.classify"
runpy.run_module("hf_finetune.classify", run_name="__main__")
"""


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "messages.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows([("win a free prize, call now", "spam"), ("see you at lunch tomorrow", "ham")] * 8)
    return path


def classify_flags(model, data, output, *extra) -> list[str]:
    return [
        "--method", "head", "--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
        "--split", "0.5,0.25,0.25", "--trainable", "all", "--per_device_train_batch_size", "2",
        "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "3",
        "--max_steps", "4", "--disable_tqdm", "true", "--dataloader_num_workers", "0", *extra,
    ]  # fmt: skip


def classify_command(*flags) -> list[str]:
    return [sys.executable, "-m", "hf_finetune.classify", *flags]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def run_in_process(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def start(argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_sigterm_handler(process: subprocess.Popen, timeout: float = 300) -> None:
    """Until the process catches SIGTERM (Linux: bit 15 of SigCgt in /proc/PID/status), which a
    command does from its first moments (core/errors.run_cli), before its imports."""
    deadline = time.time() + timeout
    while True:
        status = Path(f"/proc/{process.pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.time() < deadline, "the run never started training"
        time.sleep(0.1)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_a_kill_while_a_checkpoint_is_written_then_resume_continues_from_the_older_complete_one(
    tiny_gpt2, small_csv, tmp_path
):
    output = tmp_path / "run"
    flags = classify_flags(tiny_gpt2, small_csv, output)
    killed = run_command([sys.executable, "-c", KILLED_WHILE_WRITING_CHECKPOINT_4, *flags])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cut_off = output / "checkpoint-4"
    assert (cut_off / "optimizer.pt").is_file() and not (cut_off / "trainer_state.json").exists()

    resumed = run_command(classify_command(*flags, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resume: skipping checkpoint-4 (no trainer_state.json: its save was cut off)" in resumed.stdout.splitlines()
    assert f"resume: continuing from {output / 'checkpoint-2'}" in resumed.stdout.splitlines()
    assert json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    assert (output / FINISHED_MARKER).is_file() and not (output / LOCK_NAME).exists()


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_complete_ones(tiny_gpt2, small_csv, tmp_path, capsys,
                                                                        monkeypatch):  # fmt: skip
    output = tmp_path / "run"
    real_save = torch.save

    def save(obj, file, *args, **kwargs):
        if str(file).endswith(os.path.join("checkpoint-4", "optimizer.pt")):
            Path(file).write_bytes(b"PK" * 4096)
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    code, _, error = run_in_process(classify_flags(tiny_gpt2, small_csv, output), capsys)
    assert code == 2 and "Traceback" not in error
    assert error_lines(error) == [
        (
            f"error: training stopped at step 4 while writing checkpoint-4 in {output}: the disk is full; "
            f"{output / 'checkpoint-2'} is the last complete checkpoint: once there is room, continue with "
            f"--resume_from_checkpoint auto."
        )
    ]
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (output / FINISHED_MARKER).exists() and not (output / LOCK_NAME).exists()


def test_a_full_disk_during_the_final_save_keeps_the_earlier_run_and_leaves_no_staging(
    tiny_gpt2, small_csv, tmp_path, capsys, monkeypatch
):
    output = tmp_path / "run"
    output.mkdir()
    earlier = {FINISHED_MARKER: '{"earlier": true}', "model.safetensors": "the earlier run's weights"}
    for name, text in earlier.items():
        (output / name).write_text(text)
    from transformers import modeling_utils

    real_save = modeling_utils.safe_save_file

    def save(tensors, filename, *args, **kwargs):
        if ".final-model.partial" in str(filename):
            Path(filename).write_bytes(b"\0" * 4096)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_save(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_save_file", save)
    code, _, error = run_in_process(classify_flags(tiny_gpt2, small_csv, output, "--overwrite_output_dir"), capsys)
    assert code == 2 and "Traceback" not in error
    assert error_lines(error) == [
        (
            f"error: saving the final model into {output} failed: the disk is full; the earlier finished run there is "
            f"unchanged, and {output / 'checkpoint-4'} is the last complete checkpoint: once there is room, rerun with "
            f"--resume_from_checkpoint auto."
        )
    ]
    assert {name: (output / name).read_text() for name in earlier} == earlier
    assert not (output / ".final-model.partial").exists() and not (output / LOCK_NAME).exists()


def test_a_second_process_into_a_folder_in_use_is_refused_and_sigterm_releases_the_lock(tiny_gpt2, small_csv, tmp_path):
    output = tmp_path / "run"
    flags = classify_flags(tiny_gpt2, small_csv, output, "--max_steps", "100000", "--save_steps", "100000")
    # The first run trains at the lowest priority on one thread: the second one's refusal comes quickly.
    first = start(classify_command(*flags), env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=lambda: os.nice(19))
    try:
        wait_for(output / LOCK_NAME, first)
        second = run_command(classify_command(*flags))
        wait_for_sigterm_handler(first)
        assert second.returncode == 2, second.stderr[-2000:]
        [message] = error_lines(second.stderr)
        assert f"error: --output_dir: {output} is in use by the run of pid {first.pid} on " in message
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143
    assert not (output / LOCK_NAME).exists()


def test_sigterm_in_a_commands_first_seconds_is_one_sentence_and_exit_143(tiny_gpt2, small_csv, tmp_path):
    """While it imports torch and transformers, before any run began: not a silent 143."""
    output = tmp_path / "run"
    process = start([sys.executable, "-m", "hf_finetune", "classify", *classify_flags(tiny_gpt2, small_csv, output)])
    wait_for_sigterm_handler(process, timeout=30)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143
    assert error_lines(stderr) == ["error: interrupted by SIGTERM; the command did not finish: run it again."], stderr
    assert not output.exists()


def test_the_lock_of_a_killed_run_is_taken_over_by_the_next(tiny_gpt2, small_csv, tmp_path):
    output = tmp_path / "run"
    flags = classify_flags(tiny_gpt2, small_csv, output, "--max_steps", "2")
    killed = start(classify_command(*flags))
    wait_for(output / LOCK_NAME, killed)
    killed.kill()
    killed.wait()
    assert json.loads((output / LOCK_NAME).read_text())["pid"] == killed.pid

    next_run = run_command(classify_command(*flags))
    assert next_run.returncode == 0, next_run.stderr[-2000:]
    [note] = [line for line in next_run.stdout.splitlines() if line.startswith("note:")]
    assert f"was left by the run of pid {killed.pid} on " in note and note.endswith("which is no longer running; taking it over.")
    assert (output / FINISHED_MARKER).is_file() and not (output / LOCK_NAME).exists()


def limit_file_size():
    """A real write failure: files past 16 MB fail with EFBIG (the model is 28 MB)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))


def test_a_real_write_failure_during_a_checkpoint_gives_one_sentence(tiny_gpt2, small_csv, tmp_path):
    output = tmp_path / "run"
    result = subprocess.run(classify_command(*classify_flags(tiny_gpt2, small_csv, output)), cwd=PROJECT,
                            capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [
        (
            f"error: training stopped at step 2 while writing checkpoint-2 in {output}: a file grew past the file size "
            f"limit; no complete checkpoint was saved before it: once there is room, start again."
        )
    ]
    assert not list(output.glob("checkpoint-*")) and not (output / LOCK_NAME).exists()


def test_a_full_disk_while_the_report_is_written_keeps_the_model_and_marks_nothing_finished(
    tiny_gpt2, small_csv, tmp_path, capsys, monkeypatch
):
    from hf_finetune.core.report import files as reports

    output = tmp_path / "run"
    real_write = reports.atomic_write_bytes

    def write(path, data):
        if Path(path).name == "report.md":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(reports, "atomic_write_bytes", write)
    code, _, error = run_in_process(classify_flags(tiny_gpt2, small_csv, output), capsys)
    assert code == 2 and "Traceback" not in error
    assert error_lines(error) == [
        f"error: writing the results into {output} failed: the disk is full; the trained model is saved there, but "
        f"the run is not marked finished: once there is room, run it again."
    ]
    assert (output / "model.safetensors").is_file()
    assert not (output / FINISHED_MARKER).exists() and not (output / LOCK_NAME).exists()
