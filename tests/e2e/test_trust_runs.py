"""A run can be trusted to be the run it says it is, on tiny real runs (the head method, the last
block trained with --cache_frozen, 16 training texts in batches of 4: 4 steps per epoch, 3 epochs,
evaluated every 3 steps and at each epoch's end, a checkpoint at each epoch's end):

- its config.yaml trains it again: `--config RUN/config.yaml` into another folder gives the same
  effective arguments and bit-identical weights, recipe defaults that equal TrainingArguments' own
  (weight_decay 0, eval_strategy no, seed 42, random sampling) included;
- a SIGKILL during an evaluation, and a SIGTERM while the frozen cache is built (one sentence,
  exit 143), each followed by `--resume_from_checkpoint auto`, end with the uninterrupted run's weights;
- a checkpoint of another method is refused before it loads;
- a --max_steps run resumed from any of its checkpoints, the last step's included (a kill during the
  final evaluation), ends with the uninterrupted run's weights and train_loss, training no step more;
  a checkpoint past --max_steps is refused;
- a resume may change how the run logs, evaluates and saves, not what it trains (--learning_rate...).

Kills need a real process: the killed runs are subprocesses (`python -c` with a pause at the
moment named, OMP_NUM_THREADS=1); the runs they are compared with run in-process on one thread.
tests/e2e/test_reliability.py kills every method after an epoch-end checkpoint; test_seeds_run.py
kills a series between and inside its seeds."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from conftest import start_paused
from safetensors.torch import load_file

from hf_finetune import classify
from hf_finetune.core.errors import run_cli
from hf_finetune.recipes import spam

pytestmark = pytest.mark.usefixtures("one_thread")

def write_messages(path: Path) -> None:
    """32 distinct messages, 16 spam and 16 ham, alternating."""
    spam_texts = [f"{verb} {prize}, reply now" for verb, prize in itertools.product(
        ["win", "claim", "free", "urgent"], ["a cash prize", "a free ringtone", "tickets to the final", "a holiday"])]
    ham_texts = [f"{verb} {when}, ok?" for verb, when in itertools.product(
        ["see you", "call me", "meet me", "text me"], ["at lunch", "after work", "tomorrow morning", "at the station"])]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([("text", "label"), *[row for pair in zip(
            [(text, "spam") for text in spam_texts], [(text, "ham") for text in ham_texts]) for row in pair]])  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trust-data") / "messages.csv"
    write_messages(path)
    return path


def flags(model, data, output, *extra) -> list[str]:
    return [
        "--method", "head", "--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
        "--split", "0.5,0.25,0.25", "--trainable", "last_block", "--per_device_train_batch_size", "4",
        "--learning_rate", "5e-3", "--num_train_epochs", "3", "--logging_steps", "1", "--eval_strategy", "steps",
        "--eval_steps", "3", "--save_strategy", "steps", "--save_steps", "4", "--train_eval_samples", "8",
        "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--report_to", "none", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_gpt2, data) -> Path:
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    classify.main(flags(tiny_gpt2, data, output))
    return output


def same_weights(first: Path, second: Path) -> bool:
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_a_runs_config_yaml_trains_it_again_with_the_same_arguments_and_weights(tiny_gpt2, data, tmp_path):
    """The spam recipe's defaults (weight_decay 0.1, eval by steps, seed 123, length-grouped batches,
    a checkpoint per epoch) overridden with TrainingArguments' own defaults: the snapshot must hold
    them, or the second run trains with the recipe's."""
    first, second = tmp_path / "first", tmp_path / "second"
    overrides = ["--weight_decay", "0", "--eval_strategy", "no", "--seed", "42", "--train_sampling_strategy", "random",
                 "--save_strategy", "no", "--max_steps", "6", "--trainable", "all", "--cache_frozen", "false"]  # fmt: skip
    run_cli(spam.main, flags(tiny_gpt2, data, first, *overrides)[2:])  # the recipe has no --method
    run_cli(spam.main, ["--config", str(first / "config.yaml"), "--output_dir", str(second)])
    config = yaml.safe_load((first / "config.yaml").read_text())
    assert config["weight_decay"] == 0 and config["eval_strategy"] == "no" and config["seed"] == 42
    assert yaml.safe_load((second / "config.yaml").read_text()) == config
    assert same_weights(first, second)
    assert not any(second.glob("checkpoint-*")) and "eval_validation_loss" not in json.dumps(
        json.loads((second / "all_results.json").read_text())["history"])  # fmt: skip


def test_sigkill_during_an_evaluation_then_resume_gives_the_uninterrupted_weights(uninterrupted, tiny_gpt2, data, tmp_path):
    output = tmp_path / "killed"
    # Evaluations at steps 3, 4 (epoch end), 6, 8 (epoch end): the 4th runs after checkpoint-4 was saved.
    process = start_paused("evaluate 4", "hf_finetune.classify", flags(tiny_gpt2, data, output), tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-4"]
    run_cli(classify.main, [*flags(tiny_gpt2, data, output), "--resume_from_checkpoint", "auto"])
    assert same_weights(uninterrupted, output)


def test_sigterm_while_the_frozen_cache_is_built_is_one_sentence_and_exit_143(uninterrupted, tiny_gpt2, data, tmp_path):
    output = tmp_path / "terminated"
    process = start_paused("cache", "hf_finetune.classify", flags(tiny_gpt2, data, output), tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 143
    stderr = (tmp_path / "stderr.txt").read_text()
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "interrupted by SIGTERM while the frozen layers' cache was built, before training began" in line
    assert "Traceback" not in stderr and not (output / "_run.lock").exists()
    run_cli(classify.main, [*flags(tiny_gpt2, data, output), "--resume_from_checkpoint", "auto"])
    assert same_weights(uninterrupted, output)


def test_a_checkpoint_of_another_method_is_refused_before_it_loads(uninterrupted, tiny_gpt2, data, tmp_path, capsys):
    [checkpoint] = uninterrupted.glob("checkpoint-*")  # the classify recipe keeps the newest
    argv = [*flags(tiny_gpt2, data, tmp_path / "label-token"), "--method", "label-token",
            "--resume_from_checkpoint", str(checkpoint)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classify.main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"{checkpoint.name} was saved by another kind of run (the method: head" in line


# A constant learning rate: a linear schedule's last step has a learning rate of 0 and would hide an extra step.
BY_STEPS = ["--max_steps", "6", "--lr_scheduler_type", "constant", "--save_steps", "3", "--save_total_limit", "3"]


@pytest.fixture(scope="module")
def by_steps(tmp_path_factory, tiny_gpt2, data) -> Path:
    output = tmp_path_factory.mktemp("by-steps") / "run"
    classify.main(flags(tiny_gpt2, data, output, *BY_STEPS))
    return output


@pytest.mark.parametrize("kept", ["checkpoint-3", "checkpoint-6"])
def test_a_max_steps_run_resumed_from_any_checkpoint_ends_as_the_uninterrupted_run(by_steps, kept, tiny_gpt2, data,
                                                                                  tmp_path):  # fmt: skip
    output = tmp_path / "resumed"  # a run killed after saving `kept` (checkpoint-6: during its final evaluation)
    shutil.copytree(by_steps / kept, output / kept)
    shutil.copy(by_steps / "config.yaml", output / "config.yaml")
    run_cli(classify.main, [*flags(tiny_gpt2, data, output, *BY_STEPS), "--resume_from_checkpoint", "auto"])
    assert same_weights(by_steps, output) and not (output / "checkpoint-7").exists()
    ours, theirs = (json.loads((folder / "all_results.json").read_text()) for folder in (output, by_steps))
    assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-6)  # the mean over all 6 steps


def test_a_checkpoint_past_max_steps_is_refused(by_steps, tiny_gpt2, data, tmp_path, capsys):
    argv = [*flags(tiny_gpt2, data, tmp_path / "shorter", *BY_STEPS), "--max_steps", "3",
            "--resume_from_checkpoint", str(by_steps / "checkpoint-6")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classify.main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "checkpoint-6 was saved at step 6, past this run's --max_steps 3" in err


def test_a_resume_may_change_how_the_run_reports_but_not_what_it_trains(by_steps, tiny_gpt2, data, tmp_path, capsys):
    output = tmp_path / "resumed"
    shutil.copytree(by_steps / "checkpoint-3", output / "checkpoint-3")
    argv = [*flags(tiny_gpt2, data, output, *BY_STEPS), "--resume_from_checkpoint", "auto"]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classify.main, [*argv, "--learning_rate", "1e-3", "--weight_decay", "0.5"])
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and line == (
        f"error: --resume_from_checkpoint: {output / 'checkpoint-3'} was saved by a run with --learning_rate 0.005, "
        "and this command gives 0.001 (and 1 more: --weight_decay); a run resumes with the flags it began with (its "
        "config.yaml then trains it again): drop the change, or train anew into another --output_dir (or with "
        "--overwrite_output_dir).")  # fmt: skip
    run_cli(classify.main, [*argv, "--logging_steps", "2", "--eval_steps", "2", "--save_total_limit", "1"])
    assert same_weights(by_steps, output)


@pytest.mark.parametrize("method", ["head", "label-token"])
def test_a_max_length_beyond_the_models_context_is_lowered_to_it_and_said(method, tiny_gpt2, data, tmp_path, capsys):
    """Texts longer than the context: with --max_length above it, the model would be fed positions it has not."""
    long_texts = tmp_path / "long.csv"
    rows = list(csv.reader(data.open()))
    with open(long_texts, "w", newline="") as file:
        csv.writer(file).writerows([rows[0], *[(" ".join([text] * 200), label) for text, label in rows[1:]]])
    output = tmp_path / "run"
    argv = [*flags(tiny_gpt2, long_texts, output, "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"),
            "--method", method, "--max_length", "100000"]  # fmt: skip
    run_cli(classify.main, argv)
    context = json.loads((tiny_gpt2 / "config.json").read_text())["n_positions"]
    assert f"{context} tokens (the model's context: --max_length 100000 is above it)" in capsys.readouterr().out
    assert (output / "all_results.json").exists()
