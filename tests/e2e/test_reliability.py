"""Resume after SIGKILL, clean preemption on SIGTERM, and a NaN loss that stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, run_command
from safetensors.torch import load_file

COMPARED = ("train_accuracy", "eval_accuracy", "test_accuracy", "eval_confusion_matrix", "test_confusion_matrix")


def spam_argv(model, data, output, *extra) -> list[str]:
    return [
        sys.executable, "recipes/spam.py",
        "--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
        "--trainable", "all", "--learning_rate", "1e-3", "--num_train_epochs", "1",
        "--save_strategy", "steps", "--save_steps", "40", "--eval_steps", "100", "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


def start(argv) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def uninterrupted(tiny_gpt2, sms_zip, tmp_path_factory):
    output = tmp_path_factory.mktemp("reliability") / "uninterrupted"
    result = run_command(spam_argv(tiny_gpt2, sms_zip, output))
    assert result.returncode == 0, result.stderr[-2000:]
    return output


def assert_same_run(first: Path, second: Path) -> None:
    a = json.loads((first / "all_results.json").read_text())
    b = json.loads((second / "all_results.json").read_text())
    assert {key: a[key] for key in COMPARED} == {key: b[key] for key in COMPARED}
    weights_a, weights_b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert (weights_a[name] == weights_b[name]).all(), f"{name} differs"


def test_sigkill_mid_epoch_then_resume_gives_the_same_run(uninterrupted, tiny_gpt2, sms_zip, tmp_path):
    output = tmp_path / "killed"
    process = start(spam_argv(tiny_gpt2, sms_zip, output))
    wait_for(output / "checkpoint-80" / "trainer_state.json", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output / "all_results.json").exists()

    resumed = run_command(spam_argv(tiny_gpt2, sms_zip, output, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(uninterrupted, output)


def test_sigterm_saves_a_checkpoint_exits_non_zero_and_resumes(uninterrupted, tiny_gpt2, sms_zip, tmp_path):
    output = tmp_path / "preempted"
    process = start(spam_argv(tiny_gpt2, sms_zip, output, "--save_steps", "1000"))
    # Training has started once the first log line with a loss appears.
    deadline = time.time() + 300
    while True:
        line = process.stdout.readline()
        assert line or process.poll() is None, process.stderr.read()[-2000:]
        if "'loss'" in line:
            break
        assert time.time() < deadline
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-2000:]
    message = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "interrupted by SIGTERM at step" in message[0], stderr[-2000:]
    checkpoints = sorted(output.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and str(checkpoints[0]) in message[0]
    assert not (output / "all_results.json").exists()

    resumed = run_command(spam_argv(tiny_gpt2, sms_zip, output, "--resume_from_checkpoint", "auto"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(uninterrupted, output)


def test_non_finite_loss_stops_cleanly_naming_the_step(tiny_gpt2, sms_zip, tmp_path):
    output = tmp_path / "nan"
    result = run_command(spam_argv(tiny_gpt2, sms_zip, output, "--learning_rate", "1e30", "--max_grad_norm", "0"))
    assert result.returncode == 3, result.stderr[-2000:]
    message = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "the loss became NaN or infinite at step" in message[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (output / "all_results.json").exists() and not (output / "model.safetensors").exists()
