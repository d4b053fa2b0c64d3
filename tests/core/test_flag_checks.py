"""Flags: every value that would fail later (optimizer, DataLoader, a division by zero) or train
nothing, and every output folder the run could not write, is one sentence and exit status 2
before any data or model loads; nothing is written."""

from __future__ import annotations

import pytest

from hf_finetune import classify
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.classify.head.train import main as head_main
from hf_finetune.recipes.spam import DEFAULTS as SPAM_DEFAULTS

# (flags, words the one error line must hold)
BAD_VALUES = [
    (["--learning_rate", "-0.1"], "--learning_rate: -0.1 must not be negative"),
    (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size: 0 must be 1 or more"),
    (["--per_device_eval_batch_size", "-2"], "--per_device_eval_batch_size: -2 must be 1 or more"),
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps: 0 must be 1 or more"),
    (["--eval_accumulation_steps", "0"], "--eval_accumulation_steps: 0 must be 1 or more"),
    (["--num_train_epochs", "0"], "--num_train_epochs: 0.0 must be above 0 (or set --max_steps)"),
    (["--num_train_epochs", "-1"], "--num_train_epochs: -1.0 must be above 0"),
    (["--max_steps", "0"], "--max_steps: 0 must be 1 or more, or -1"),
    (["--max_steps", "-7"], "--max_steps: -7 must be 1 or more, or -1"),
    (
        ["--eval_strategy", "steps", "--eval_steps", "-5"],
        "--eval_steps: -5.0 must be above 0 with --eval_strategy steps",
    ),
    (["--save_strategy", "steps", "--save_steps", "0"], "--save_steps: 0.0 must be above 0 with --save_strategy steps"),
    (["--logging_steps", "-1"], "--logging_steps: -1.0 must be above 0 with --logging_strategy steps"),
    (["--logging_steps", "0"], "requires non-zero --logging_steps"),
    (["--warmup_steps", "-3"], "Got --warmup_steps = -3.0, Expected value --warmup_steps >= 0"),
    (["--weight_decay", "-0.5"], "--weight_decay: -0.5 must not be negative"),
    (["--adam_beta1", "1"], "--adam_beta1: 1.0 must be at least 0 and below 1"),
    (["--adam_beta2", "-0.1"], "--adam_beta2: -0.1 must be at least 0 and below 1"),
    (["--adam_epsilon=-1e-8"], "--adam_epsilon: -1e-08 must not be negative"),
    (["--label_smoothing_factor", "1.5"], "--label_smoothing_factor: 1.5 must be at least 0 and below 1"),
    (["--seed", "-1"], "--seed: -1 must be between 0 and 2**32 - 1"),
    (["--seed", str(2**32)], "--seed: 4294967296 must be between 0"),
    (["--data_seed", "-4"], "--data_seed: -4 must be between 0"),
    (["--dataloader_num_workers", "-1"], "--dataloader_num_workers: -1 must not be negative"),
    (["--save_total_limit", "0"], "--save_total_limit: 0 must be 1 or more (or unset to keep every checkpoint"),
    (["--save_total_limit=-1"], "--save_total_limit: -1 must be 1 or more"),
    (["--ddp_timeout", "0"], "--ddp_timeout: 0 must be between 1 and 10**9 seconds"),
    (["--ddp_timeout", "-600"], "--ddp_timeout: -600 must be between 1 and 10**9 seconds"),
    (["--ddp_timeout", str(10**12)], "--ddp_timeout: 1000000000000 must be between 1 and 10**9 seconds"),
    (["--ddp_timeout", "1e3"], "--ddp_timeout: invalid int value: '1e3'"),
    (["--learning_rate", "fast"], "--learning_rate: invalid float value: 'fast'; see --help"),
    (["--per_device_train_batch_size", "2.5"], "--per_device_train_batch_size: invalid int value: '2.5'"),
    (["--eval_strategy", "sometimes"], "--eval_strategy: invalid choice: 'sometimes'"),
    (["--fp16", "--bf16"], "conflicting or invalid flags: At most one of --fp16 and --bf16"),
    # __post_init__'s message spans lines: all of it, as one line
    (
        ["--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy", "steps"],
        'requires the save and eval strategy to match, except when --save_strategy="best", but found - Evaluation',
    ),
    (["--split", "0.5,0.5,0.5"], "--split: '0.5,0.5,0.5' must be three fractions"),
    (["--class_names", "pos"], "--class_names: 'pos' must name two or more"),
    (["--max_length", "0"], "--max_length: 0 must be 1 or more"),
    (["--train_eval_samples", "-1"], "--train_eval_samples: -1 must not be negative"),
    (["--text_column", "label"], "--text_column and --label_column both name 'label'"),
    (["--final_train_sample", "-1"], "--final_train_sample: -1 must not be negative (0 scores every training text)"),
    (["--final_train_sample", "lots"], "--final_train_sample: invalid int value: 'lots'"),
    (["--final_train_sample", "inf"], "--final_train_sample: invalid int value: 'inf'"),
    (["--final_train_sample", ""], "--final_train_sample: invalid int value: ''"),
    (["--bf16", "maybe"], "--bf16: Truthy value expected: got maybe but expected one of yes/no, true/false"),
]


@pytest.fixture
def nothing_loads(monkeypatch):
    def loaded(*args, **kwargs):
        raise AssertionError("data or a model loaded: the flag was checked too late")

    monkeypatch.setattr("hf_finetune.methods.classify.data.load_source", loaded)
    monkeypatch.setattr("hf_finetune.core.run.method.load_tokenizer", loaded)


def refused(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error[-1500:]
    assert "Traceback" not in error
    lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, error[-1500:]
    return lines[0]


@pytest.mark.parametrize("flags, message", BAD_VALUES, ids=[" ".join(flags) for flags, _ in BAD_VALUES])
def test_a_bad_value_is_one_sentence_before_anything_loads(flags, message, tmp_path, nothing_loads, capsys):
    output = tmp_path / "run"
    line = refused(classify.main, ["--dataset", "data.csv", "--output_dir", str(output), *flags], capsys)
    assert message in line
    assert not output.exists()


def test_the_spam_recipe_refuses_zero_epochs_before_anything_loads(tmp_path, nothing_loads, capsys):
    output = tmp_path / "spam"
    line = refused(
        lambda argv: head_main(argv, SPAM_DEFAULTS), ["--output_dir", str(output), "--num_train_epochs", "0"], capsys
    )
    assert "--num_train_epochs: 0.0 must be above 0" in line
    assert not output.exists()


def test_max_steps_makes_zero_epochs_fine(tmp_path):
    from transformers import TrainingArguments

    from hf_finetune.core.parsing import parse_arguments
    from hf_finetune.methods.classify.command import ARGUMENTS

    args = parse_arguments(ARGUMENTS, ["--output_dir", str(tmp_path), "--num_train_epochs", "0", "--max_steps", "3"])
    [training_args] = [item for item in args if isinstance(item, TrainingArguments)]
    assert training_args.max_steps == 3


def test_a_bad_value_in_a_config_file_is_named(tmp_path, nothing_loads, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: -1\n", encoding="utf-8")
    line = refused(classify.main, ["--output_dir", str(tmp_path / "run"), "--config", str(config)], capsys)
    assert f"--learning_rate: -1.0 must not be negative (set in --config {config})." in line


def test_the_command_line_value_is_the_one_named(tmp_path, nothing_loads, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 0.1\n", encoding="utf-8")
    line = refused(
        classify.main, ["--output_dir", str(tmp_path / "run"), "--config", str(config), "--learning_rate=-2"], capsys
    )
    assert line == "error: --learning_rate: -2.0 must not be negative."


def test_an_output_dir_that_is_a_file_is_refused_and_kept(tmp_path, nothing_loads, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me", encoding="utf-8")
    line = refused(classify.main, ["--output_dir", str(existing)], capsys)
    assert f"--output_dir: {existing} is a file, not a folder" in line
    assert existing.read_text(encoding="utf-8") == "keep me"


def test_an_output_dir_below_a_file_is_refused(tmp_path, nothing_loads, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me", encoding="utf-8")
    line = refused(classify.main, ["--output_dir", str(existing / "run")], capsys)
    assert f"--output_dir: {existing}, above {existing / 'run'}, is a file" in line
    assert existing.read_text(encoding="utf-8") == "keep me"


def test_an_output_dir_nobody_can_write_is_refused(nothing_loads, capsys):
    # /proc refuses new files to every user, root included (file modes alone would not: root ignores them).
    line = refused(classify.main, ["--output_dir", "/proc/hf_finetune_run/out"], capsys)
    assert "--output_dir: cannot create files in /proc" in line
    assert "choose a folder you can write to" in line


def test_the_write_check_leaves_no_file_behind(tmp_path):
    from hf_finetune.core.checks import check_writable_folder

    check_writable_folder(tmp_path / "new" / "run", "--output_dir")
    assert list(tmp_path.iterdir()) == []
