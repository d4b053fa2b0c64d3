"""Every method survives a crash, a preemption, Ctrl-C and a non-finite loss.

For each method (head: recipes/spam.py; label-token: `python -m hf_finetune.classify`;
instruction: recipes/instruction.py; chat: recipes/spanish_chat.py, masked loss; reward:
recipes/reward.py), on a tiny
random-init GPT-2, a few dozen rows and about 24 steps, evaluated every 5 steps and at each
epoch's end (chat: no evaluation), a checkpoint at each epoch's end:
- SIGKILL after the first epoch-end checkpoint, then `--resume_from_checkpoint auto`: bit-identical
  weights, final figures and evaluation history (the epoch-end evaluation draws random numbers and
  logs figures: the checkpoint holds both);
- SIGTERM / Ctrl-C (SIGINT): exit 143 / 130, one sentence naming the checkpoint it saved, which resumes
  to the same run;
- a loss that becomes NaN: exit 3, one sentence naming the step, no model saved;
- `--skip_nonfinite_batches`: the one NaN batch is skipped and logged, the run finishes.

Signals need a real process: those runs are subprocesses writing to files (never an undrained
pipe). Everything else runs in-process through `run_cli`, as a user meets it. Every run uses one
thread (OMP_NUM_THREADS=1 in the subprocesses, torch.set_num_threads(1) here), so that a run and
its resumed copy compute the same sums in the same order.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import PROJECT, subprocess_env
from safetensors.torch import load_file
from transformers import TrainerCallback

import hf_finetune.core.run.skeleton as run_module
from hf_finetune import classify
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.chat.train import main as chat_main
from hf_finetune.methods.classify.head.train import main as head_main
from hf_finetune.methods.instruction.train import main as instruction_main
from hf_finetune.recipes import instruction as instruction_recipe
from hf_finetune.recipes import reward as reward_recipe
from hf_finetune.recipes import spam, spanish_chat

STEPS = 24  # every method's run below takes this many optimizer steps
COMMON = ["--learning_rate", "1e-3", "--eval_strategy", "steps", "--eval_steps", "5", "--logging_steps", "1",
          "--save_strategy", "steps", "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--report_to", "none"]  # fmt: skip


@dataclass
class MethodUnderTest:
    command: list[str]  # how a user starts it
    main: Callable[[list[str]], object]  # the same, in-process
    flags: Callable[
        [dict, Path], list[str]
    ]  # from the inputs (model, data folders) and the output folder
    epoch_end: int  # the step that ends the first epoch: a checkpoint is saved there


def classifier_flags(inputs: dict, output: Path) -> list[str]:
    # 48 rows in batches of 4: 12 steps per epoch
    return ["--model_name_or_path", str(inputs["model"]), "--dataset", str(inputs["classification"]),
            "--class_names", "neg,pos", "--trainable", "all", "--per_device_train_batch_size", "4",
            "--per_device_eval_batch_size", "16", "--num_train_epochs", "2", "--output_dir", str(output), *COMMON,
            "--save_steps", "12"]  # fmt: skip


def instruction_flags(inputs: dict, output: Path) -> list[str]:
    # 24 entries in batches of 2: 12 steps per epoch
    return ["--model_name_or_path", str(inputs["model"]), "--dataset", str(inputs["instruction"]),
            "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "8", "--num_train_epochs", "2",
            "--max_length", "256", "--max_new_tokens", "4", "--sample_max_new_tokens", "4",
            "--generation_batch_size", "8", "--output_dir", str(output), *COMMON, "--save_steps", "12"]  # fmt: skip


def chat_flags(inputs: dict, output: Path) -> list[str]:
    # the recipe's 5 demo conversations in batches of 1 (its default): 5 steps per epoch, stopped at 24; no
    # validation split to evaluate
    return ["--model_name_or_path", str(inputs["model"]), "--method", "masked", "--max_steps", str(STEPS),
            "--answers_every_epoch", "false", "--max_new_tokens", "4", "--output_dir", str(output), *COMMON,
            "--eval_strategy", "no", "--save_steps", "10"]  # fmt: skip


def reward_flags(inputs: dict, output: Path) -> list[str]:
    # 48 pairs in batches of 4: 12 steps per epoch
    return ["--model_name_or_path", str(inputs["model"]), "--dataset", str(inputs["pairs"]),
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--num_train_epochs", "2",
            "--max_length", "256", "--output_dir", str(output), *COMMON, "--save_steps", "12"]  # fmt: skip


METHODS = {
    "head": MethodUnderTest(
        [sys.executable, "recipes/spam.py"],
        lambda argv: head_main(argv, defaults=spam.DEFAULTS),
        classifier_flags,
        12,
    ),
    "label_token": MethodUnderTest(
        [sys.executable, "-m", "hf_finetune.classify"], classify.main, classifier_flags, 12
    ),
    "instruction": MethodUnderTest(
        [sys.executable, "recipes/instruction.py"],
        lambda argv: instruction_main(argv, defaults=instruction_recipe.DEFAULTS),
        instruction_flags,
        12,
    ),
    "chat": MethodUnderTest(
        [sys.executable, "recipes/spanish_chat.py"],
        lambda argv: chat_main(
            argv, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO
        ),
        chat_flags,
        10,
    ),
    "reward": MethodUnderTest([sys.executable, "recipes/reward.py"], reward_recipe.main, reward_flags, 12),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inputs(tiny_gpt2, rt_folder, instruction_json, preference_json, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("reliability-data")
    classification = folder / "reviews"
    classification.mkdir()
    for split, count in (("train", 48), ("validation", 8), ("test", 16)):
        rows = [
            json.loads(line)
            for line in (rt_folder / f"{split}.jsonl")
            .read_text(encoding="utf-8")
            .split("\n")
            if line
        ]
        negative, positive = (
            [row for row in rows if row["label"] == 0],
            [row for row in rows if row["label"] == 1],
        )
        mixed = [
            row
            for pair in zip(negative[: count // 2], positive[: count // 2])
            for row in pair
        ]
        (classification / f"{split}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in mixed)
        )
    instruction = folder / "instructions"
    instruction.mkdir()
    entries = json.loads(instruction_json.read_text(encoding="utf-8"))
    for split, rows in (
        ("train", entries[:24]),
        ("validation", entries[24:28]),
        ("test", entries[28:32]),
    ):
        (instruction / f"{split}.json").write_text(json.dumps(rows))
    pairs = folder / "pairs"
    pairs.mkdir()
    book = [entry for entry in json.loads(preference_json.read_text(encoding="utf-8"))[:70]
            if entry["chosen"] != entry["rejected"]]  # fmt: skip
    for split, rows in (("train", book[:48]), ("validation", book[48:56]), ("test", book[56:64])):
        (pairs / f"{split}.json").write_text(json.dumps(rows))
    return {
        "model": tiny_gpt2,
        "classification": classification,
        "instruction": instruction,
        "pairs": pairs,
    }


@pytest.fixture(scope="module", params=sorted(METHODS))
def method(request) -> MethodUnderTest:
    return METHODS[request.param]


@pytest.fixture(scope="module")
def uninterrupted(method, inputs, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("reference") / "run"
    run_cli(method.main, method.flags(inputs, output))
    state = json.loads(
        (output / f"checkpoint-{STEPS}" / "trainer_state.json").read_text()
    )
    assert state["global_step"] == STEPS == state["max_steps"]
    return output


# --- helpers -------------------------------------------------------------------------------------


def start(method: MethodUnderTest, argv: list[str], logs: Path) -> subprocess.Popen:
    """The method as a user starts it; stdout and stderr go to files (unbuffered, read while it runs)."""
    env = subprocess_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with (
        open(logs / "stdout.txt", "w") as stdout,
        open(logs / "stderr.txt", "w") as stderr,
    ):
        return subprocess.Popen(
            [*method.command, *argv], cwd=PROJECT, env=env, stdout=stdout, stderr=stderr
        )


def wait_until(
    condition: Callable[[], bool],
    process: subprocess.Popen,
    logs: Path,
    timeout: float = 300,
) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, (
            f"the run ended first: {(logs / 'stderr.txt').read_text()[-2000:]}"
        )
        assert time.time() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


VARYING = (
    "runtime",
    "seconds",
    "per_second",
    "history",
    "train_loss",
    "model_flops",
    "training_tokens",
    "training_steps_timed",
)  # timings, losses logged mid-run, and the work of this process's own steps (a resumed run counts its own)


def final_figures(value):
    """all_results.json without timings and the running training loss (a resumed run logs only its own steps)."""
    if isinstance(value, dict):
        return {
            key: final_figures(item)
            for key, item in value.items()
            if not any(word in key for word in VARYING)
        }
    if isinstance(value, list):
        return [final_figures(item) for item in value]
    return value


def assert_same_run(reference: Path, resumed: Path) -> None:
    weights_a, weights_b = (
        load_file(reference / "model.safetensors"),
        load_file(resumed / "model.safetensors"),
    )
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), f"{name} differs"
    a = json.loads((reference / "all_results.json").read_text())
    b = json.loads((resumed / "all_results.json").read_text())
    assert final_figures(a) == final_figures(b)


# --- tests -----------------------------------------------------------------------------------------


def test_sigkill_after_a_checkpoint_then_resume_gives_the_same_run(
    method, inputs, uninterrupted, tmp_path
):
    output = tmp_path / "killed"
    process = start(method, method.flags(inputs, output), tmp_path)
    wait_until(
        lambda: (output / f"checkpoint-{method.epoch_end}" / "trainer_state.json").exists(),
        process,
        tmp_path,
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (
        not (output / "all_results.json").exists()
        and not (output / "model.safetensors").exists()
    )

    run_cli(
        method.main, [*method.flags(inputs, output), "--resume_from_checkpoint", "auto"]
    )
    assert_same_run(uninterrupted, output)
    assert evaluations(output) == evaluations(uninterrupted)


def evaluations(run: Path) -> list[dict]:
    """The evaluation points of a finished run's history (timings left out)."""
    results = json.loads((run / "all_results.json").read_text())
    history = results.get("history")
    points = history if isinstance(history, list) else [point for part in (history or {}).values() for point in part]
    return [{key: value for key, value in point.items() if key.startswith("eval_") and
             not any(word in key for word in ("runtime", "per_second", "_time"))} | {"step": point.get("step")}
            for point in points if any(key.startswith("eval_") for key in point)]  # fmt: skip


@pytest.mark.parametrize(
    "signum, exit_code",
    [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_saves_a_checkpoint_exits_with_its_code_and_resumes(
    method, inputs, uninterrupted, tmp_path, signum, exit_code
):
    output = tmp_path / "preempted"
    # No scheduled checkpoint: the only one is the one the signal makes.
    process = start(
        method, [*method.flags(inputs, output), "--save_steps", "1000"], tmp_path
    )
    wait_until(
        lambda: "  training loss " in (tmp_path / "stdout.txt").read_text(), process, tmp_path
    )  # step 1 is done
    process.send_signal(signum)
    assert process.wait(timeout=300) == exit_code, (
        tmp_path / "stderr.txt"
    ).read_text()[-2000:]
    stderr = (tmp_path / "stderr.txt").read_text()
    [message] = error_lines(stderr)
    [checkpoint] = output.glob("checkpoint-*")
    name = signal.Signals(signum).name
    assert (
        f"interrupted by {name} at step {checkpoint.name.split('-')[1]}; checkpoint saved in {checkpoint}"
        in message
    )
    assert "--resume_from_checkpoint auto" in message and "Traceback" not in stderr
    assert int(checkpoint.name.split("-")[1]) < STEPS
    assert (
        not (output / "all_results.json").exists()
        and not (output / "model.safetensors").exists()
    )

    run_cli(
        method.main, [*method.flags(inputs, output), "--resume_from_checkpoint", "auto"]
    )
    assert_same_run(uninterrupted, output)


def test_nan_loss_stops_with_exit_3_naming_the_step_and_saves_no_model(
    method, inputs, tmp_path, capsys
):
    output = tmp_path / "nan"
    # The first update is so large that the second step's loss is no longer finite.
    argv = [
        *method.flags(inputs, output),
        "--learning_rate",
        "1e30",
        "--max_grad_norm",
        "0",
    ]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(method.main, argv)
    assert exit_info.value.code == 3
    stderr = capsys.readouterr().err
    [message] = error_lines(stderr)
    assert (
        "the loss became NaN or infinite at step 2" in message
        and "--learning_rate" in message
    ), message
    assert "no checkpoint had been saved yet" in message and "Traceback" not in stderr
    assert (
        not (output / "all_results.json").exists()
        and not (output / "model.safetensors").exists()
    )


class PoisonOneStep(TrainerCallback):
    """Makes the loss of one step NaN: the input embeddings of that step's batch become NaN.

    Nothing a user can pass does this to a single batch (a data row cannot make the loss NaN, and
    a huge learning rate spoils every step after the first), so the test injects it here."""

    def __init__(self, step: int):
        self.step, self.hook = step, None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            embeddings = model.get_input_embeddings()
            self.hook = embeddings.register_forward_hook(
                lambda module, inputs, output: output * float("nan")
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.hook is not None:
            self.hook.remove()
            self.hook = None


def test_skip_nonfinite_batches_skips_the_nan_batch_logs_its_step_and_finishes(
    method, inputs, tmp_path, capsys, monkeypatch
):
    train_reliably = run_module.train_reliably

    def with_one_nan_step(trainer, *args, **kwargs):
        trainer.add_callback(PoisonOneStep(5))
        return train_reliably(trainer, *args, **kwargs)

    monkeypatch.setattr(run_module, "train_reliably", with_one_nan_step)
    output = tmp_path / "skip"
    run_cli(
        method.main,
        [
            *method.flags(inputs, output),
            "--skip_nonfinite_batches",
            "--save_strategy",
            "no",
        ],
    )
    captured = capsys.readouterr()
    stdout = captured.out
    assert "warning: step 5 had a non-finite loss or gradient; its batch was skipped" in captured.err
    assert "skipped 1 batch(es) with a non-finite loss: steps [5]" in stdout
    losses = [
        float(loss) for loss in re.findall(r"^step \d+/\d+  training loss (\S+)$", stdout, re.MULTILINE)
    ]  # the run's line per logged loss (--disable_tqdm), every step
    # Every step ran, and the skipped batch's NaN left no trace in the losses logged after it.
    assert len(losses) == STEPS and all(map(math.isfinite, losses))
    [train_loss] = re.findall(r"\(mean training loss (\S+)\)", stdout)  # the summary
    assert math.isfinite(float(train_loss))
    assert (output / "all_results.json").is_file()
    assert all(
        torch.isfinite(weight).all()
        for weight in load_file(output / "model.safetensors").values()
    )
