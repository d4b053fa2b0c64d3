"""The features that make results trustworthy, at their edges, without training: every flag and file
a command reads gets its edge cases (empty, wrong type or shape, extremes, another run's artefacts),
met as a user meets them (`run_cli(main, argv)`): exit status 2 (or the stated one), one `error:`
line naming the flag, key, file or split, no traceback, nothing written where it should not be.

tests/e2e/test_reliability.py, test_seeds_run.py and test_trust_runs.py train the runs these
promises are about (config.yaml reproducing a run, exact resume, one split for every seed)."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml
from conftest import PROJECT, subprocess_env

from hf_finetune import cli, compare, predict, tiny
from hf_finetune.core.config_file import NOT_SNAPSHOT, config_snapshot
from hf_finetune.core.data.sources import SourceData
from hf_finetune.core.errors import EXIT_BROKEN_PIPE, UserError, run_cli
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.console import logger
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json
from hf_finetune.core.run.ownership import SERIES_MARKER
from hf_finetune.core.run.preflight import settle_training_args
from hf_finetune.core.run.training import RunIdentity, check_checkpoint_fits
from hf_finetune.methods.chat import train as chat_train
from hf_finetune.methods.classify import command as classify_command
from hf_finetune.methods.classify.calibration import calibration_headline, calibration_plan, check_calibration_data
from hf_finetune.methods.classify.data import prepare_classification
from hf_finetune.methods.classify.head import train as head_train
from hf_finetune.methods.grpo import train as grpo_train
from hf_finetune.methods.instruction import train as instruction_train
from hf_finetune.methods.instruction.encoding import encode_instructions
from hf_finetune.methods.preference import train as preference_train
from hf_finetune.methods.reward import train as reward_train
from hf_finetune.methods.text.pair_encoding import encode_pair
from hf_finetune.recipes import classify, grpo, instruction, preference, reward, spam, spanish_chat

TRAINING = {
    "spam": spam.main,
    "classify": classify.main,
    "instruction": instruction.main,
    "chat": spanish_chat.main,
    "preference": preference.main,
    "reward": reward.main,
    "grpo": lambda argv: grpo.main([*argv, "--rewards", "exact"]),
}


def refusal(main, argv: list, capsys, code: int = 2) -> str:
    """The one `error:` line `main(argv)` ends with, checked: its exit status, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(token) for token in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err[-2000:]
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def training_argv(tmp_path, *extra, output: Path | None = None) -> list:
    """Flags that would train, were the model there: every case below is refused before it loads."""
    return ["--model_name_or_path", tmp_path / "no-model-loads", "--output_dir", output or tmp_path / "out", *extra]


# --- numbers at their extremes, for every training command ------------------------------------


@pytest.mark.parametrize("command", TRAINING)
@pytest.mark.parametrize(
    "flags, words",
    [
        (["--learning_rate", "nan"], "--learning_rate: nan is not a finite number"),
        (["--learning_rate=-inf"], "--learning_rate: -inf is not a finite number"),
        (["--learning_rate", "-inf"], "--learning_rate: needs a value (one that starts with '-' reads as a flag: write"),
        (["--num_train_epochs", "inf"], "--num_train_epochs: inf is not a finite number"),
        (["--max_grad_norm", "NaN"], "--max_grad_norm: NaN is not a finite number"),
        (["--save_strategy", "steps", "--save_steps", "inf"], "--save_steps: inf is not a finite number"),
        (["--per_device_train_batch_size", "1" + "0" * 20], "is too large (at most 2**63 - 1)"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps: 0 must be 1 or more"),
        (["--seed", "-1"], "--seed: -1 must be between 0 and 2**32 - 1"),
        (["--seed", "²"], "--seed: invalid int value: '²'"),
        (["--seeds", ""], "--seeds: '' must be whole numbers separated by commas"),
        (["--seeds", "1,²"], "--seeds: '1,²' must be whole numbers separated by commas"),
        (["--seeds", "-1,2"], "--seeds: needs a value (one that starts with '-' reads as a flag: write --seeds=VALUE)"),
        (["--seeds_vary_split"], "--seeds_vary_split varies the data split between the runs of --seeds"),
        (["--max_steps", "0"], "--max_steps: 0 must be 1 or more"),
    ],
)
def test_a_number_at_its_extreme_is_one_sentence_before_anything_loads(command, flags, words, tmp_path, capsys):
    line = refusal(TRAINING[command], training_argv(tmp_path, *flags), capsys)
    assert words in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--split_seed", "-3"], "--split_seed: -3 must be between 0 and 2**32 - 1"),
        (["--seeds", "1,2", "--seeds_vary_split", "--split_seed", "5"], "drop one of the two"),
        (["--cache_frozen_max_gb", "inf"], "--cache_frozen_max_gb: inf is not a finite number"),
    ],
)
def test_classifier_only_numbers(flags, words, tmp_path, capsys):
    line = refusal(classify.main, training_argv(tmp_path, *flags), capsys)
    assert words in line, line


@pytest.mark.parametrize("command", ["instruction", "chat", "reward", "grpo"])
def test_a_method_whose_split_draws_nothing_refuses_seeds_vary_split(command, tmp_path, capsys):
    line = refusal(TRAINING[command], training_argv(tmp_path, "--seeds", "1,2", "--seeds_vary_split"), capsys)
    assert "--seeds_vary_split: this method's data split draws nothing at random" in line


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--layers", "0"], "--layers: 0 must be 1 or more"),
        (["--width", "-8"], "--width: -8 must be 1 or more"),
        (["--heads", "0"], "--heads: 0 must be 1 or more"),
        (["--context", "0"], "--context: 0 must be 1 or more"),
        (["--seed", "-1"], "--seed: -1 must be between 0 and 2**32 - 1"),
        (["--width", "10000000", "--heads", "1"], "more than the"),
        (["--layers", "1" + "0" * 19], "--layers: 1" + "0" * 19 + " is too large"),
    ],
)
def test_tiny_refuses_shapes_no_model_can_have(argv, words, tmp_path, capsys, gpt2_tokenizer_dir):
    line = refusal(tiny.main, ["--tokenizer", gpt2_tokenizer_dir, "--output", tmp_path / "m", *argv], capsys)
    assert words in line, line
    assert not (tmp_path / "m").exists()


def test_tiny_refuses_tokenizer_text_that_is_not_utf8(tmp_path, capsys):
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    line = refusal(tiny.main, ["--train_tokenizer_on", tmp_path / "latin1.txt", "--output", tmp_path / "m"], capsys)
    assert f"--train_tokenizer_on: {tmp_path / 'latin1.txt'} is not UTF-8 text (byte 3)" in line


# --- what a user points at: text that is not UTF-8, a pipe that closes, no command ------------------


def test_a_command_line_value_that_is_not_utf8_names_its_flag(tmp_path, capsys):
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands such bytes over
    line = refusal(classify.main, training_argv(tmp_path, "--dataset", undecodable), capsys)
    assert "the value of --dataset is not UTF-8 text" in line
    line = refusal(predict.main, [tmp_path, undecodable], capsys)
    assert "argument 2 is not UTF-8 text" in line


def test_standard_input_that_is_not_utf8_is_one_sentence(monkeypatch, capsys):
    class Bytes:
        buffer = type("Buffer", (), {"read": staticmethod(lambda: "a fine film\ncafé\n".encode("latin-1"))})()

        @staticmethod
        def isatty():
            return False

    monkeypatch.setattr(sys, "stdin", Bytes())
    with pytest.raises(UserError, match=r"^standard input is not UTF-8 \(byte 15\)"):
        predict.read_texts([], None)


def test_a_reader_that_stops_reading_ends_the_command_quietly(capsys):
    def writes_into_a_closed_pipe(argv):
        logger.info("a message no one reads")  # logging drops it; no "--- Logging error ---"
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(writes_into_a_closed_pipe, [])
    assert exit_info.value.code == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_the_overview_into_a_closed_pipe_exits_141_without_a_word():
    read, write = os.pipe()
    os.close(read)
    result = subprocess.run([sys.executable, "-m", "hf_finetune", "--help"], stdout=write, stderr=subprocess.PIPE,
                            env=subprocess_env(), cwd=PROJECT, text=True, timeout=120)  # fmt: skip
    os.close(write)
    assert result.returncode == EXIT_BROKEN_PIPE and result.stderr == ""


def test_no_command_shows_the_overview_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cli.main, [])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and out == ""
    assert err.startswith("usage: hf-finetune COMMAND") and err.splitlines()[-1].startswith("error: name a command")


# --- --config files ---------------------------------------------------------------------------


def config_file(tmp_path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text, extra, words",
    [
        ("learning_rate: [0.002]\n", [], "run.yaml, key 'learning_rate': a list ([0.002]), but --learning_rate takes one"),
        ("report_to: [none, wandb]\n", [], "key 'report_to': a list (['none', 'wandb']), but --report_to takes one"),
        ("include_for_metrics: [[a]]\n", [], "key 'include_for_metrics': the list holds a list or mapping"),
        ("learning_rate: {a: 1}\n", [], "--learning_rate: invalid float value: '{\"a\": 1}'; see --help (set in --config"),
        ("learning_rate: .nan\n", [], "--learning_rate: nan is not a finite number; see --help (set in --config"),
        ("- a\n", [], "must be a mapping of flag names to values"),
        ("seeds: ''\n", [], "--seeds: '' must be whole numbers"),
        ("learning_rate: 0.1\n", ["--config"], "--config is given twice"),
    ],
)
def test_a_config_file_mistake_names_the_key_and_the_file(text, extra, words, tmp_path, capsys):
    path = config_file(tmp_path, text)
    line = refusal(classify.main, training_argv(tmp_path, "--config", path, *extra, *([path] if extra else [])), capsys)
    assert words in line, line


def test_a_refusal_after_parsing_names_the_config_file_that_set_its_flag(tmp_path, capsys):
    path = config_file(tmp_path, "label_words: bad,good\n")
    line = refusal(classify.main, training_argv(tmp_path, "--config", path, "--method", "head"), capsys)
    assert line == (f"error: --label_words: label words are written by --method label-token only; drop --label_words "
                    f"for --method head (--label_words set in --config {path}).")  # fmt: skip
    line = refusal(classify.main, training_argv(tmp_path, "--label_words", "bad,good", "--method", "head"), capsys)
    assert "set in --config" not in line, "the command line set it"


def test_config_given_a_folder_says_so(tmp_path, capsys):
    line = refusal(classify.main, training_argv(tmp_path, "--config", tmp_path), capsys)
    assert f"--config: {tmp_path} is a folder; pass the YAML file in it" in line


def test_a_key_given_twice_in_a_config_file_is_named_with_its_line(tmp_path, capsys):
    path = config_file(tmp_path, "learning_rate: 0.1\nmax_steps: 2\nlearning_rate: 0.2\n")
    line = refusal(classify.main, training_argv(tmp_path, "--config", path), capsys)
    assert line == f"error: --config: {path}, line 3 is not valid YAML (the key 'learning_rate' is given twice)."
    path = config_file(tmp_path, "[1]: 2\n")
    assert "is not valid YAML" in refusal(classify.main, training_argv(tmp_path, "--config", path), capsys)


def test_config_given_an_empty_value_or_a_device_says_so(tmp_path, capsys):
    line = refusal(classify.main, training_argv(tmp_path, "--config="), capsys)
    assert line == "error: --config: the value is empty; give the YAML file (a run folder's config.yaml)."
    line = refusal(classify.main, training_argv(tmp_path, "--config", "/dev/null"), capsys)
    assert "--config: /dev/null is not a regular file (a device or a pipe)" in line


@pytest.mark.parametrize("command", TRAINING)
@pytest.mark.parametrize("flag", ["--output_dir", "--dataset", "--model_name_or_path", "--resume_from_checkpoint"])
def test_an_empty_path_flag_is_refused_not_read_as_the_working_folder(command, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # were it read as the working folder, nothing of the project's is touched
    argv = [token for token in training_argv(tmp_path) if str(token)]
    line = refusal(TRAINING[command], [*argv, f"{flag}="], capsys)
    assert line.startswith(f"error: {flag}: the value is empty; give ")
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_the_command_line_wins_without_parsing_the_files_value(tmp_path):
    path = config_file(tmp_path, "learning_rate: true\nnum_train_epochs: 2\n")
    parsed = parse_arguments(head_train.ARGUMENTS, ["--config", str(path), "--learning_rate", "0.01", "--output_dir", "x"])
    assert parsed[4].learning_rate == 0.01 and parsed[4].num_train_epochs == 2


ARGUMENTS = {
    "spam": (head_train.ARGUMENTS, spam.DEFAULTS),
    "classify": (classify_command.ARGUMENTS, classify.DEFAULTS),
    "instruction": (instruction_train.ARGUMENTS, instruction.DEFAULTS),
    "chat": (chat_train.ARGUMENTS, spanish_chat.DEFAULTS),
    "preference": (preference_train.ARGUMENTS, preference.DEFAULTS),
    "reward": (reward_train.ARGUMENTS, reward.DEFAULTS),
    "grpo": (grpo_train.ARGUMENTS, grpo.DEFAULTS),
}


def settled_snapshot(command: str, argv: list[str]) -> dict:
    types, defaults = ARGUMENTS[command]
    parsed = parse_arguments(types, argv, defaults)
    for item in parsed:
        if hasattr(item, "learning_rate"):
            settle_training_args(item)
    return config_snapshot(*parsed)


@pytest.mark.parametrize("command", ARGUMENTS)
def test_a_snapshot_read_back_with_config_gives_every_value_again(command, tmp_path):
    """Recipe defaults that equal TrainingArguments' own (weight_decay 0, eval_strategy no) included."""
    argv = ["--output_dir", str(tmp_path / "a"), "--weight_decay", "0", "--eval_strategy", "no", "--report_to", "none",
            "--logging_steps", "7", "--debug", "underflow_overflow", "--hub_token", "hf_secret", "--use_cpu"]  # fmt: skip
    snapshot = settled_snapshot(command, argv)
    assert snapshot["weight_decay"] == 0 and snapshot["eval_strategy"] == "no"
    assert not set(snapshot) & NOT_SNAPSHOT and "hub_token" not in snapshot
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(snapshot, sort_keys=False), encoding="utf-8")
    assert "hf_secret" not in path.read_text()
    assert settled_snapshot(command, ["--config", str(path), "--output_dir", str(tmp_path / "b")]) == snapshot


# --- folders another command or series owns ------------------------------------------------------


def seeds_series(folder: Path) -> Path:
    """A finished --seeds series as it is left on disk (no training)."""
    for seed in (1, 2):
        (folder / f"seed-{seed}").mkdir(parents=True)
        (folder / f"seed-{seed}" / "config.yaml").write_text("learning_rate: 0.001\n")
        atomic_write_json(folder / f"seed-{seed}" / FINISHED_MARKER, {"test_accuracy": 0.5 + seed / 10})
    (folder / "config.yaml").write_text("seeds: 1,2\n")
    atomic_write_json(folder / SERIES_MARKER, {"kind": "seeds", "runs": ["seed-1", "seed-2"]})
    return folder


@pytest.mark.parametrize("overwrite", [[], ["--overwrite_output_dir"]])
def test_a_run_into_a_series_or_one_of_its_runs_is_refused_even_with_overwrite(overwrite, tmp_path, capsys):
    series = seeds_series(tmp_path / "series")
    before = {path: path.read_bytes() for path in series.rglob("*") if path.is_file()}
    line = refusal(classify.main, training_argv(tmp_path, *overwrite, output=series), capsys)
    assert "holds a --seeds series" in line and "a single run there would replace" in line
    line = refusal(classify.main, training_argv(tmp_path, *overwrite, output=series / "seed-1"), capsys)
    assert f"is a run of a --seeds series in {series}; rerun that series' command" in line
    assert {path: path.read_bytes() for path in series.rglob("*") if path.is_file()} == before


def test_a_run_or_a_series_into_a_compare_output_is_refused(tmp_path, capsys):
    (tmp_path / "cmp").mkdir()
    atomic_write_json(tmp_path / "cmp" / "compare.json", {"runs": []})
    for extra in ([], ["--seeds", "1,2"]):
        line = refusal(classify.main, training_argv(tmp_path, *extra, output=tmp_path / "cmp"), capsys)
        assert "holds the output of hf-finetune compare (compare.json)" in line


def saved_model(folder: Path) -> Path:
    """A model folder as save_pretrained leaves it (the weights' bytes do not matter here)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


@pytest.mark.parametrize("overwrite", [[], ["--overwrite_output_dir"]])
@pytest.mark.parametrize("extra", [[], ["--seeds", "1,2"]])
def test_a_run_into_the_model_it_loads_or_any_saved_model_is_refused(extra, overwrite, tmp_path, capsys):
    model = saved_model(tmp_path / "model")
    before = {path: path.read_bytes() for path in model.rglob("*") if path.is_file()}
    argv = ["--model_name_or_path", model, "--output_dir", model, *extra, *overwrite]
    line = refusal(classify.main, argv, capsys)
    assert f"--output_dir: {model} is the model this run loads (--model_name_or_path)" in line
    line = refusal(classify.main, training_argv(tmp_path, *extra, *overwrite, output=model), capsys)
    assert f"--output_dir: {model} holds a saved model, not a run" in line
    assert {path: path.read_bytes() for path in model.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize("inside", ["checkpoint-2", "checkpoint-2/deeper", "sub"])
@pytest.mark.parametrize("extra", [[], ["--seeds", "1,2"]])
def test_a_run_inside_another_runs_folder_is_refused(inside, extra, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "config.yaml").write_text("learning_rate: 0.001\n")
    (run / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    line = refusal(classify.main, training_argv(tmp_path, *extra, output=run / inside), capsys)
    nearest = run / "checkpoint-2" if inside.startswith("checkpoint-2/") else run  # the nearest run folder above
    assert f"is inside {nearest}, the folder of a run or a model" in line
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
    assert not (run / "sub").exists()


def test_a_fresh_run_into_an_unfinished_runs_checkpoints_is_refused_unless_resuming_or_overwriting(tmp_path, capsys):
    output = tmp_path / "out"
    (output / "checkpoint-4").mkdir(parents=True)
    (output / "config.yaml").write_text("learning_rate: 0.001\n")
    line = refusal(classify.main, training_argv(tmp_path), capsys)
    assert f"--output_dir: {output} holds the checkpoints of an unfinished run (newest checkpoint-4); continue " \
           f"it with --resume_from_checkpoint auto" in line  # fmt: skip
    for extra in (["--resume_from_checkpoint", "auto"], ["--overwrite_output_dir"]):  # past the guard, to the data
        assert "--dataset: could not load" in refusal(classify.main, training_argv(tmp_path, *extra), capsys)
    assert (output / "checkpoint-4").is_dir()


def test_a_series_into_a_finished_single_run_is_refused_even_with_overwrite(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    atomic_write_json(tmp_path / "out" / FINISHED_MARKER, {"test_accuracy": 0.5})
    line = refusal(classify.main, training_argv(tmp_path, "--seeds", "1,2", "--overwrite_output_dir"), capsys)
    assert "holds a finished run (all_results.json); a --seeds series needs a folder of its own" in line


def finished_run(folder: Path, results: object = None, config: object = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config if config is not None else {"dataset": "d.csv"}))
    results = results if results is not None else {"test_accuracy": 0.5, "label_names": ["a", "b"], "history": []}
    (folder / FINISHED_MARKER).write_text(json.dumps(results))
    return folder


@pytest.mark.parametrize("where", ["seed-1", "seed-1/plots", "."])
def test_compare_output_inside_a_run_or_series_is_refused(where, tmp_path, capsys):
    series = seeds_series(tmp_path / "series")
    (series / "summary.json").write_text("{}")
    other = finished_run(tmp_path / "other")
    line = refusal(compare.main, [series, other, "--output", series / where], capsys)
    assert "the folder of a run or series, whose files compare would replace" in line or \
        "is one of the runs compared" in line, line  # fmt: skip
    assert not (series / where / "compare.md").exists()


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda run: (run / FINISHED_MARKER).write_text("[1, 2]"), "all_results.json is damaged (list, not an object)"),
        (lambda run: (run / FINISHED_MARKER).write_text('{"a": '), "all_results.json cannot be read (JSONDecodeError)"),
        (lambda run: (run / FINISHED_MARKER).write_bytes(b'{"a": "\xe9"}'), "cannot be read (UnicodeDecodeError)"),
        (lambda run: (run / FINISHED_MARKER).write_text('{"label_names": "ab"}'), "label_names are not a list of texts"),
        (lambda run: (run / FINISHED_MARKER).write_text('{"history": [{"epoch": "one"}]}'), "non-number epoch"),
        (lambda run: (run / FINISHED_MARKER).write_text('{"history": [3]}'), "history is not a list of logged points"),
        (lambda run: (run / "config.yaml").write_text("- 1\n"), "config.yaml is not a mapping of flags to values"),
        (lambda run: (run / "test_predictions.jsonl").write_bytes(b"\xe9\n"), "test_predictions.jsonl is not UTF-8"),
        (lambda run: (run / "test_predictions.jsonl").write_text('{"text": "a", "label": "a", "predicted": 1}\n'),
         "test_predictions.jsonl, line 1: not a test prediction"),
    ],
)
def test_compare_checks_each_results_file_for_its_shape(damage, words, tmp_path, capsys):
    first, second = finished_run(tmp_path / "a"), finished_run(tmp_path / "b")
    for run in (first, second):
        (run / "test_predictions.jsonl").write_text('{"text": "t", "label": "a", "predicted": "b"}\n')
    damage(first)
    line = refusal(compare.main, [first, second], capsys)
    assert words in line, line


@pytest.mark.parametrize(
    "summary, words",
    [
        ({"runs": 3}, "its seeds are not a list of whole numbers"),
        ({"seeds": [1, 2], "runs": [{"folder": "seed-1"}], "metrics": {}}, "not one object with a folder per seed"),
        ({"seeds": [1], "runs": [{"folder": "../other"}], "metrics": {}}, "not a folder inside the series"),
        ({"seeds": [1], "runs": [{"folder": "seed-1"}], "metrics": {"x": 1}}, "not a mean and std per metric"),
    ],
)
def test_compare_checks_a_series_summary_for_its_shape(summary, words, tmp_path, capsys):
    series = seeds_series(tmp_path / "series")
    (series / "summary.json").write_text(json.dumps(summary))
    line = refusal(compare.main, [series, finished_run(tmp_path / "other")], capsys)
    assert words in line and "run the --seeds command again" in line, line


# --- evaluated splits, calibration ------------------------------------------------------------


def source(splits: dict[str, dict], origin="reviews") -> SourceData:
    return SourceData(splits=datasets.DatasetDict({name: datasets.Dataset.from_dict(rows) for name, rows in splits.items()}),
                      origin=origin, files={name: f"{origin}/{name}.jsonl" for name in splits})  # fmt: skip


def text(number: int) -> str:
    """A text no other one nearly repeats (the leakage check compares character 5-grams)."""
    return "".join(random.Random(number).choices(string.ascii_lowercase + " ", k=40))


def rows(*labels: str, start: int = 0) -> dict:
    return {"text": [text(start + index) for index in range(len(labels))], "label": list(labels)}


def test_a_given_evaluated_split_without_a_class_is_refused_naming_its_file():
    data = source({"train": rows("neg", "pos") , "validation": rows("neg", "neg", start=10), "test": rows("pos", "neg", start=20)})
    with pytest.raises(UserError, match=r"^--dataset: the validation split has no example of 'pos' \(only of 'neg'\); "
                       r"its accuracy, F1 and calibration would say nothing about the missing class: give "
                       r"reviews/validation.jsonl examples of every class\.$"):  # fmt: skip
        prepare_classification(data)


def test_a_cut_test_split_without_a_class_names_split_and_split_seed():
    data = source({"train": rows(*(["neg"] * 9 + ["pos"]))})
    with pytest.raises(UserError, match=r"--dataset: the (train|validation|test) split has no example of 'pos'.* cut by "
                       r"--split 0.7,0.1,0.2 with split seed 4, so use more data, other fractions or another --split_seed"):
        prepare_classification(data, seed=4)


def test_dedupe_that_empties_a_class_of_a_split_is_named():
    test = rows("neg", "pos", start=20)
    validation = {"text": [text(21), text(30)], "label": ["pos", "neg"]}  # its pos text repeats a test text
    data = source({"train": rows("neg", "pos", "neg", "pos", start=40), "validation": validation, "test": test})
    with pytest.raises(UserError, match=r"^--dedupe: the validation split has no example of 'pos' \(only of 'neg'\) "
                       r"once duplicates are dropped"):  # fmt: skip
        prepare_classification(data, dedupe=True)


def test_a_split_dedupe_leaves_empty_names_dedupe():
    data = source({"train": {"text": [text(1)] * 6 + [text(2), text(3)], "label": ["neg"] * 6 + ["pos", "neg"]}})
    with pytest.raises(UserError, match=r"split is empty: .* for --split 0.7,0.1,0.2 after --dedupe; .* or drop --dedupe"):
        prepare_classification(data, dedupe=True)


def test_calibration_on_too_few_validation_texts_is_refused_and_on_few_warned_everywhere():
    with pytest.raises(UserError, match=r"^--calibrate: the validation split has 2 text\(s\); a temperature fitted on "
                       r"fewer than 20"):  # fmt: skip
        check_calibration_data(True, 2)
    check_calibration_data(False, 2)
    assert "warning: fitted on only 40 validation texts" in calibration_plan(True, 40)["calibrate"]
    assert "warning" not in calibration_plan(True, 400)["calibrate"] and calibration_plan(False, 40) == {}
    results = {"test_ece": 0.2, "test_ece_calibrated": 0.1, "calibration_temperature": 2.0, "calibration_examples": 40}
    assert "warning: fitted on only 40" in calibration_headline(results)["test ECE"]


def test_calibrate_without_a_temperature_found_says_so_in_the_summary_not_only_the_report():
    line = calibration_headline({"test_ece": 0.2, "calibration_temperature": None, "calibration_examples": 40})["test ECE"]
    assert line.startswith("0.2000, uncalibrated: --calibrate found no temperature")
    assert calibration_headline({"test_ece": 0.2}) == {}  # no --calibrate: nothing to say


# --- the way out names what can change ----------------------------------------------------------


def test_responses_too_long_for_the_models_context_are_not_told_to_raise_max_length(gpt2_tokenizer_dir):
    from hf_finetune.core.model.loading import load_tokenizer

    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    entry = {"instruction": "Say it.", "input": "", "output": "word " * 40}
    splits = datasets.DatasetDict({name: datasets.Dataset.from_dict({key: [value] for key, value in entry.items()})
                                   for name in ("train", "validation", "test")})  # fmt: skip
    with pytest.raises(UserError, match=r"^--dataset: every training response is too long for the model's 16 positions"):
        encode_instructions(splits, tokenizer, 16, True, at_model_limit=True)
    with pytest.raises(UserError, match=r"^--max_length: 16 tokens is too short for every training response; raise it"):
        encode_instructions(splits, tokenizer, 16, True)
    pair = {"instruction": "Say it.", "input": "", "chosen": "word " * 40, "rejected": "no", "place": "entry 1"}
    with pytest.raises(UserError) as refused:
        encode_pair(tokenizer, pair, 16, "the model's 16 positions")
    assert str(refused.value).startswith("--dataset: entry 1") and "raise --max_length" not in str(refused.value)


# --- checkpoints of another run --------------------------------------------------------------------


def test_a_checkpoint_of_another_method_is_refused_before_it_loads(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    theirs = {"method": "instruction (Alpaca prompt; loss on the response)", "model": "GPT2LMHeadModel",
              "trainable_parameters": "1234"}  # fmt: skip
    state = {"global_step": 4, "stateful_callbacks": {RunIdentity.__name__: RunIdentity(theirs).state()}}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    ours = {**theirs, "method": "label-token (text + separator + label word)"}
    with pytest.raises(UserError, match=r"^--resume_from_checkpoint: .*checkpoint-4 was saved by another kind of run "
                       r"\(the method: instruction .* there, label-token .* here\)"):  # fmt: skip
        check_checkpoint_fits(str(checkpoint), ours, model=None)
    check_checkpoint_fits(str(checkpoint), theirs, model=None)  # its own run resumes


def test_predict_on_a_checkpoint_of_an_unfinished_label_token_run_says_how_to_finish_it(tiny_gpt2, tmp_path, capsys):
    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text((tiny_gpt2 / "config.json").read_text())
    identity = {"method": "label-token (text + separator + label word)", "model": "GPT2LMHeadModel"}
    (checkpoint / "trainer_state.json").write_text(json.dumps({"stateful_callbacks": {
        RunIdentity.__name__: RunIdentity(identity).state()}}))  # fmt: skip
    line = refusal(predict.main, [checkpoint, "a fine film"], capsys)
    assert "is a checkpoint of a label-token run that has not finished" in line and "text generator" not in line


def test_an_unknown_flag_is_named_alone_not_with_the_known_flag_it_begins_with(tmp_path, capsys):
    line = refusal(instruction.main, training_argv(tmp_path, "--seeds", "1,2", "--seeds_varyy"), capsys)
    assert line == "error: unknown flag(s): --seeds_varyy; see --help."


def test_an_instruction_split_left_empty_by_dedupe_names_dedupe(tmp_path, capsys):
    entries = tmp_path / "same.json"
    entries.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "hi"}] * 30), encoding="utf-8")
    line = refusal(instruction.main, training_argv(tmp_path, "--dataset", entries, "--dedupe"), capsys)
    assert "--split: the train split is empty (0 train entries left after --dedupe)" in line and "drop --dedupe" in line


def test_a_list_for_a_one_value_key_is_refused_even_where_the_command_line_sets_the_flag(tmp_path, capsys):
    path = config_file(tmp_path, "learning_rate: [0.002]\n")
    line = refusal(classify.main, training_argv(tmp_path, "--config", path, "--learning_rate", "0.01"), capsys)
    assert "run.yaml, key 'learning_rate': a list ([0.002])" in line


def test_a_checkpoint_from_before_run_identity_is_judged_by_its_run_folders_flags(tmp_path):
    checkpoint = tmp_path / "instruction" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    (checkpoint.parent / "config.yaml").write_text("instruction_column: instruction\nlearning_rate: 0.001\n")
    ours = {"method": "label-token", "label_words": None, "learning_rate": 0.001}
    with pytest.raises(UserError, match=r"its run's config.yaml holds flags this command has not: instruction_column"):
        check_checkpoint_fits(str(checkpoint), {"method": "label-token"}, model=None, config=ours)
    (checkpoint.parent / "config.yaml").write_text("method: head\nlearning_rate: 0.001\n")
    with pytest.raises(UserError, match=r"its run's --method is head, this run's label-token"):
        check_checkpoint_fits(str(checkpoint), {"method": "label-token"}, model=None, config=ours)
    (checkpoint.parent / "config.yaml").write_text("method: head\nlabel_words: null\nseparator: null\n")
    check_checkpoint_fits(str(checkpoint), {"method": "head"}, model=None, config={"learning_rate": 0.001})  # spam


@pytest.mark.parametrize("label, held", [(["good"], "lists"), ({"name": "good"}, "objects")])
def test_a_label_column_of_lists_or_objects_is_refused_not_turned_into_class_names(label, held, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": label}) + "\n" for i in range(4)))
    line = refusal(classify.main, training_argv(tmp_path, "--dataset", data), capsys)
    assert f"--dataset: {data}" in line and f"column 'label' holds {held}, not labels" in line


def test_a_split_seed_on_data_that_comes_split_is_said_to_have_no_effect(tmp_path):
    from types import SimpleNamespace

    from hf_finetune.methods.classify.arguments import DataArguments
    from hf_finetune.methods.classify.data import load_classification_data

    for split in ("train", "validation", "test"):
        rows = [{"text": text(index), "label": index % 2} for index in range(6)]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    seeded = load_classification_data(DataArguments(dataset=str(tmp_path), split_seed=5), SimpleNamespace(seed=42))
    assert seeded.split_seed is None and "it comes split, so --split_seed 5 draws nothing (no effect)" in seeded.notes
    plain = load_classification_data(DataArguments(dataset=str(tmp_path)), SimpleNamespace(seed=42))
    assert not any("--split_seed" in note for note in plain.notes)
