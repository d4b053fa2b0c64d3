"""--seeds without training: every command's method is copied fresh per seed, bad values are refused
before anything loads, a rerun keeps the finished seeds, and the summary's figures are the seeds'.

`run_one` (one ordinary run) is replaced by a stand-in that records the method it gets and writes
the run folder's files as a finished run would; tests/e2e/test_seeds_run.py trains for real."""

from __future__ import annotations

import json
import statistics
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from transformers import TrainingArguments

import hf_finetune.core.run.seeds as seeds_module
import hf_finetune.core.run.skeleton as run_module
from hf_finetune import classify
from hf_finetune.core.errors import run_cli
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json
from hf_finetune.core.run.preflight import settle_training_args
from hf_finetune.core.run.seeds import copied_training_args, final_metrics, run_history
from hf_finetune.recipes import instruction, spanish_chat

COMMANDS = {
    "classify head": (classify.main, ["--method", "head"]),
    "classify label-token": (classify.main, []),
    "instruction": (instruction.main, []),
    "chat": (spanish_chat.main, []),
}


def figures_of(seed: int) -> dict:
    """The stand-in run's final figures: different per seed, so that a mix-up shows."""
    return {"test_accuracy": 0.5 + seed / 100, "train_loss": 1.0 / seed, "epochs": 1, "trainable": "all parameters"}


class RecordedRuns:
    """Stands in for core.run.run_one: records each method and writes a finished run's files."""

    def __init__(self):
        self.methods = []
        self.data_comes_split = False  # True: the runs' data has its own splits, nothing is cut

    def __call__(self, method) -> dict:
        assert not hasattr(method, "ran"), "a seed's run got a method another run already used"
        method.ran = True
        self.methods.append(method)
        folder = method.training_args.output_dir
        seed = method.training_args.seed
        Path(folder).mkdir(parents=True, exist_ok=True)
        settle_training_args(method.training_args, method.run_args.skip_nonfinite_batches,
                             method.required_training_arguments())  # as a run does before its config.yaml
        (Path(folder) / "config.yaml").write_text(yaml.safe_dump(method.config(), sort_keys=False))
        (Path(folder) / "model.safetensors").write_bytes(b"weights")
        options = next((item for item in method.options if hasattr(item, "split_seed")), None)
        drawn = {"split_seed": options.split_seed} if options is not None and options.split_seed is not None and \
            not self.data_comes_split else {}  # a run records the seed it cut its split with  # fmt: skip
        history = [{"step": step, "epoch": step / 2, "examples_seen": step * 4, "train_loss": 1.0 / (seed + step),
                    "eval_validation_accuracy": 0.5 + step / 10} for step in (1, 2)]  # fmt: skip
        atomic_write_json(f"{folder}/{FINISHED_MARKER}", {**figures_of(seed), **drawn, "label_names": ["ham", "spam"],
                                                           "history": history})  # fmt: skip
        return figures_of(seed)


@pytest.fixture
def plotted(monkeypatch) -> RecordedRuns:
    runs = RecordedRuns()
    monkeypatch.setattr(run_module, "run_one", runs)
    return runs


@pytest.fixture
def recorded(plotted, monkeypatch) -> RecordedRuns:
    """The series' curves are drawn in one test (plotted); the others test what seeds do, and drawing
    took most of their time."""
    monkeypatch.setattr(seeds_module, "plot_seed_curves", lambda *args, **kwargs: [])
    return plotted


def argv(tmp_path, *extra) -> list[str]:
    return ["--model_name_or_path", str(tmp_path / "no-model-loads"), "--output_dir", str(tmp_path / "out"),
            "--report_to", "none", *extra]  # fmt: skip


def error_of(main, arguments, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, arguments)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "Traceback" not in captured.err
    [line] = [line for line in captured.err.splitlines() if line.strip()]
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("command", COMMANDS)
def test_each_seed_gets_a_fresh_copy_of_the_method_with_its_seed_and_folder(command, recorded, tmp_path):
    main, extra = COMMANDS[command]
    main(argv(tmp_path, *extra, "--seeds", "3,1", "--learning_rate", "0.0007"))
    assert [method.training_args.seed for method in recorded.methods] == [3, 1]
    assert [method.training_args.output_dir for method in recorded.methods] == [
        str(tmp_path / "out" / "seed-3"), str(tmp_path / "out" / "seed-1")]  # fmt: skip
    first, second = recorded.methods
    assert first is not second and first.training_args is not second.training_args
    assert all(vars(first)[name] is not vars(second)[name] for name in ("model_args", "run_args", "options"))
    for method in recorded.methods:
        assert method.training_args.learning_rate == 0.0007 and method.run_args.seeds is None
        saved = yaml.safe_load((tmp_path / "out" / f"seed-{method.training_args.seed}" / "config.yaml").read_text())
        assert saved["seed"] == method.training_args.seed and "seeds" not in saved  # reusable with --config
    top = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert top["seeds"] == "3,1" and "seed" not in top and top["learning_rate"] == 0.0007


def test_the_summary_holds_each_metrics_mean_std_min_max_and_one_line_per_seed(plotted, tmp_path):
    summary = classify.main(argv(tmp_path, "--seeds", "1,2,4"))
    out = tmp_path / "out"
    assert json.loads((out / "summary.json").read_text()) == summary
    values = {seed: json.loads((out / f"seed-{seed}" / FINISHED_MARKER).read_text()) for seed in (1, 2, 4)}
    for name in ("test_accuracy", "train_loss", "epochs"):
        column = [values[seed][name] for seed in (1, 2, 4)]
        assert summary["metrics"][name] == pytest.approx(
            {"mean": statistics.mean(column), "std": statistics.stdev(column), "min": min(column), "max": max(column)})
    assert "trainable" not in summary["metrics"]  # words are no metric
    assert [(run["seed"], run["folder"], run["metrics"]["test_accuracy"]) for run in summary["runs"]] == [
        (1, "seed-1", 0.51), (2, "seed-2", 0.52), (4, "seed-4", 0.54)]  # fmt: skip
    assert summary["label_names"] == ["ham", "spam"]
    report = (out / "summary.md").read_text()
    assert "| test_accuracy | 0.5233 | 0.0153 | 0.5100 | 0.5400 | 0.5100 | 0.5200 | 0.5400 |" in report
    assert report.count("trained in this run") == 3
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf"):
        assert (out / name).stat().st_size > 0, name


def test_the_console_shows_the_held_out_figures_and_summary_md_every_one(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    out = capsys.readouterr().out
    summary = out[out.index("=== 2 seeds"):]
    assert f"(every figure: {tmp_path / 'out' / 'summary.md'})" in summary
    assert "  test_accuracy  0.5150 ± 0.0071  (0.5100 to 0.5200)" in summary and "train_loss" in summary
    assert "epochs" not in summary and "| metric |" not in summary  # not a setting, nor the whole table


def test_one_seed_has_no_standard_deviation(recorded, tmp_path):
    summary = classify.main(argv(tmp_path, "--seeds", "5"))
    assert summary["metrics"]["test_accuracy"] == {"mean": 0.55, "std": None, "min": 0.55, "max": 0.55}


def test_a_rerun_keeps_the_finished_seeds_and_trains_the_others(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    first_result = tmp_path / "out" / "seed-1" / FINISHED_MARKER
    before = first_result.stat().st_mtime_ns
    summary = classify.main(argv(tmp_path, "--seeds", "1,2,3"))  # as after a crash in seed 3, or to add one
    assert [method.training_args.seed for method in recorded.methods] == [1, 2, 3]
    assert first_result.stat().st_mtime_ns == before
    assert [run["kept"] for run in summary["runs"]] == [True, True, False]
    assert "seed 1 (1 of 3): " in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.md").read_text().count("finished in an earlier run, kept") == 2


def test_a_rerun_with_other_flags_is_refused_before_anything_runs(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    summary = (tmp_path / "out" / "summary.json").read_text()
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2,3", "--learning_rate", "0.1"), capsys)
    assert "learning_rate" in line and "--overwrite_output_dir" in line and "seed runs trained with other flags" in line
    assert len(recorded.methods) == 2 and not (tmp_path / "out" / "seed-3").exists()
    assert (tmp_path / "out" / "summary.json").read_text() == summary


def test_a_rerun_may_drop_overwrite_or_add_traceback_and_keeps_the_finished_seeds(recorded, tmp_path):
    classify.main(argv(tmp_path, "--seeds", "1,2", "--overwrite_output_dir"))
    summary = classify.main(argv(tmp_path, "--seeds", "1,2,3", "--traceback"))
    assert [run["kept"] for run in summary["runs"]] == [True, True, False]


def test_overwrite_trains_every_seed_again(recorded, tmp_path):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    classify.main(argv(tmp_path, "--seeds", "1,2", "--learning_rate", "0.1", "--overwrite_output_dir"))
    assert [method.training_args.seed for method in recorded.methods] == [1, 2, 1, 2]
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["learning_rate"] == 0.1


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1,x", "'1,x' must be whole numbers separated by commas"),
        ("1,,2", "'1,,2' must be whole numbers separated by commas"),
        ("-1", "'-1' must be whole numbers separated by commas"),
        ("2,3,2", "2 is given twice"),
        ("4294967296", "4294967296 must be between 0 and 2**32 - 1"),
    ],
)
def test_a_bad_seeds_value_is_one_sentence_before_anything_is_written(value, words, recorded, tmp_path, capsys):
    line = error_of(classify.main, argv(tmp_path, "--seeds", value), capsys)
    assert line.startswith("error: --seeds: ") and words in line
    assert not recorded.methods and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--push_to_hub", "--hub_model_id", "me/x"], "--push_to_hub publishes one model"),
        (["--resume_from_checkpoint", "somewhere/checkpoint-4"], "--resume_from_checkpoint: with --seeds"),
    ],
)
def test_flags_that_cannot_work_per_seed_are_refused(extra, words, recorded, tmp_path, capsys):
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2", *extra), capsys)
    assert words in line
    assert not recorded.methods and not (tmp_path / "out").exists()


def test_a_finished_single_run_in_the_folder_is_not_replaced_unasked(recorded, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / FINISHED_MARKER).write_text("{}")
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2"), capsys)
    assert "holds a finished run" in line and not recorded.methods


def test_a_copy_of_the_training_arguments_keeps_every_value_but_the_changed_ones():
    [args] = parse_arguments([TrainingArguments], [
        "--output_dir", "out", "--report_to", "none", "--eval_strategy", "steps", "--logging_steps", "3",
        "--gradient_checkpointing", "--lr_scheduler_type", "cosine", "--lr_scheduler_kwargs", '{"num_cycles": 2}',
        "--accelerator_config", '{"split_batches": true}', "--seed", "9", "--run_name", "mine",
    ])  # fmt: skip
    copied = copied_training_args(args, seed=4, output_dir="out/seed-4")
    changed = {item.name for item in fields(args) if getattr(copied, item.name) != getattr(args, item.name)}
    assert changed == {"seed", "output_dir"}
    assert copied.eval_steps == 3 and copied.report_to == [] and copied.activation_checkpointing
    assert copied.accelerator_config is not args.accelerator_config  # Trainer pops from it


def test_a_chat_run_keeps_its_figures_in_its_one_method_row():
    results = {"methods": [{"method": "masked", "train_loss": 0.5, "training_exact": 3, "heldout": None}],
               "history": {"masked": [{"epoch": 1.0, "step": 2, "train_loss": 0.5}]}}  # fmt: skip
    assert final_metrics(results) == {"train_loss": 0.5, "training_exact": 3}
    assert run_history(results) == [{"epoch": 1.0, "step": 2, "train_loss": 0.5}]


def split_seeds_of(recorded: RecordedRuns) -> list[int | None]:
    return [next(options.split_seed for options in method.options if hasattr(options, "split_seed"))
            for method in recorded.methods]  # fmt: skip


def test_every_seed_cuts_one_split_with_the_split_seed_or_the_seed(recorded, tmp_path):
    summary = classify.main(argv(tmp_path, "--seeds", "3,1", "--seed", "9"))
    assert split_seeds_of(recorded) == [9, 9]  # --seed, which --seeds replaces for training
    assert summary["split_seed"] == 9 and summary["seeds_vary_split"] is False
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["split_seed"] == 9
    classify.main(argv(tmp_path, "--seeds", "3,1", "--split_seed", "5", "--output_dir", str(tmp_path / "fixed")))
    assert split_seeds_of(recorded)[2:] == [5, 5]


def test_a_series_on_data_that_comes_split_says_so_not_that_a_seed_cut_it(recorded, tmp_path):
    recorded.data_comes_split = True
    summary = classify.main(argv(tmp_path, "--seeds", "3,1", "--seeds_vary_split"))
    assert summary["seeds_vary_split"] is False and summary["split_seed"] is None
    report = (tmp_path / "out" / "summary.md").read_text()
    assert "the data comes split (its own train, validation and test)" in report and "cut its own" not in report


def test_seeds_vary_split_cuts_each_seeds_split_with_the_seed(recorded, tmp_path):
    summary = classify.main(argv(tmp_path, "--seeds", "3,1", "--seeds_vary_split"))
    assert split_seeds_of(recorded) == [3, 1]
    assert summary["seeds_vary_split"] is True and "each seed cut its own data split" in (
        tmp_path / "out" / "summary.md").read_text()  # fmt: skip
    saved = yaml.safe_load((tmp_path / "out" / "seed-3" / "config.yaml").read_text())
    assert saved["split_seed"] == 3 and "seeds_vary_split" not in saved  # the seed's file trains that one run


def test_a_seed_with_damaged_results_trains_again_and_the_others_are_kept(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    (tmp_path / "out" / "seed-2" / FINISHED_MARKER).write_text('{"test_accuracy": ')  # cut off by a full disk
    summary = classify.main(argv(tmp_path, "--seeds", "1,2"))
    assert [method.training_args.seed for method in recorded.methods] == [1, 2, 2]
    assert recorded.methods[-1].run_args.overwrite_output_dir
    assert "seed-2, its all_results.json or its model is damaged: training it again" in capsys.readouterr().out
    assert [run["kept"] for run in summary["runs"]] == [True, False]


def test_a_seed_whose_model_is_gone_trains_again(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    (tmp_path / "out" / "seed-1" / "model.safetensors").unlink()
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    assert [method.training_args.seed for method in recorded.methods] == [1, 2, 1]
    assert "seed-1, its all_results.json or its model is damaged: training it again" in capsys.readouterr().out


def test_a_rerun_that_leaves_out_seeds_of_the_series_is_refused(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    before = {path: path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file()}
    line = error_of(classify.main, argv(tmp_path, "--seeds", "2"), capsys)
    assert "holds a series of the seeds 1,2, and --seeds 2 leaves out seed-1; name them all" in line
    assert {path: path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file()} == before
    classify.main(argv(tmp_path, "--seeds", "1,2,3"))  # more seeds add to it
    assert [method.training_args.seed for method in recorded.methods] == [1, 2, 3]


def test_settings_are_not_averaged_as_figures():
    assert final_metrics({"test_accuracy": 0.5, "split_seed": 7, "seed": 3}) == {"test_accuracy": 0.5}


def test_a_seed_trained_with_other_flags_is_named_and_the_series_left_as_it_was(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    config = tmp_path / "out" / "seed-2" / "config.yaml"
    config.write_text(config.read_text().replace("learning_rate: 5.0e-05", "learning_rate: 0.5"))
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2"), capsys)
    assert f"(learning_rate: 0.5 in {config}, 5e-05 now)" in line and len(recorded.methods) == 2
    config.write_text("- damaged\n")
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2"), capsys)
    assert f"delete {tmp_path / 'out' / 'seed-2'} to train that seed again" in line


def test_a_series_from_before_split_seed_goes_on_with_seeds_vary_split_and_keeps_its_seeds(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2", "--seeds_vary_split"))
    for seed in (1, 2):  # as written before --split_seed: each seed's split was cut with its seed
        config = tmp_path / "out" / f"seed-{seed}" / "config.yaml"
        config.write_text("".join(line + "\n" for line in config.read_text().splitlines() if "split_seed" not in line))
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2,3"), capsys)
    assert "(split_seed: None in" in line and "add --seeds_vary_split to go on with them" in line
    summary = classify.main(argv(tmp_path, "--seeds", "1,2,3", "--seeds_vary_split"))
    assert [run["kept"] for run in summary["runs"]] == [True, True, False]


def test_a_seed_from_before_split_seed_is_told_to_go_on_with_seeds_vary_split(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2", "--seeds_vary_split"))
    (tmp_path / "out" / "config.yaml").unlink()  # only the seeds' own files speak for them
    config = tmp_path / "out" / "seed-1" / "config.yaml"
    config.write_text("".join(line + "\n" for line in config.read_text().splitlines() if "split_seed" not in line))
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2"), capsys)
    assert f"(split_seed: 1 in {config}, 42 now (those seeds cut their own splits: add --seeds_vary_split" in line


def test_an_unfinished_seed_is_not_resumed_under_other_flags(recorded, tmp_path, capsys):
    classify.main(argv(tmp_path, "--seeds", "1,2"))
    (tmp_path / "out" / "seed-2" / FINISHED_MARKER).unlink()  # as if killed: the series' file speaks for it
    line = error_of(classify.main, argv(tmp_path, "--seeds", "1,2", "--learning_rate", "0.1"), capsys)
    assert f"in {tmp_path / 'out' / 'config.yaml'}, 0.1 now" in line
