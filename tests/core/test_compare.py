"""hf_finetune.compare on run folders written by hand (as finished runs and --seeds runs leave them):
the flags that differ, the metrics with their seed spread, the test texts labelled differently,
and one sentence for every folder it cannot compare. tests/e2e/test_compare_run.py compares real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hf_finetune.compare import main
from hf_finetune.core.errors import run_cli
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json
from hf_finetune.core.run.seeds import write_summary
from hf_finetune.methods.classify.report import TEST_PREDICTIONS

PLOTTED = "test_two_runs_give_the_flags_that_differ_the_metrics_the_curves_and_the_texts_labelled_differently"


@pytest.fixture(autouse=True)
def curves_drawn_once(request, monkeypatch):
    """One test draws and checks the curves; in the others, drawing took most of the time."""
    if request.node.name != PLOTTED:
        monkeypatch.setattr("hf_finetune.compare.plot_compared_curves", lambda *args, **kwargs: [])
        monkeypatch.setattr("hf_finetune.core.run.seeds.plot_seed_curves", lambda *args, **kwargs: [])


CONFIG = {"model_name_or_path": "tiny", "dataset": "messages.csv", "learning_rate": 0.001, "max_steps": 4}
TEXTS = [("win a prize now", "spam"), ("lunch at noon?", "ham"), ("free ringtone, reply", "spam"), ("call me", "ham")]


def history(loss: float) -> list[dict]:
    return [{"step": step, "epoch": step / 2, "examples_seen": step * 4, "train_loss": loss / step,
             "eval_validation_loss": loss, "eval_validation_accuracy": 0.5 + step / 10} for step in (1, 2)]  # fmt: skip


def finished_run(folder: Path, predicted: list[str] | None = None, labels=("ham", "spam"), **figures) -> Path:
    """A finished classifier run: config.yaml (CONFIG with `figures`' flags), all_results.json, test predictions."""
    flags = {key: value for key, value in figures.items() if key in ("learning_rate", "dataset", "seed")}
    results = {"train_loss": 0.6, "test_accuracy": 0.5, "trainable": "all parameters",
               **{key: value for key, value in figures.items() if key not in flags}}  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({**CONFIG, **flags}, sort_keys=False))
    if predicted is not None:
        (folder / TEST_PREDICTIONS).write_text("".join(
            json.dumps({"text": text, "label": label, "predicted": guess, "probability": 0.7}) + "\n"
            for (text, label), guess in zip(TEXTS, predicted)))  # fmt: skip
    atomic_write_json(folder / FINISHED_MARKER, {**results, "label_names": list(labels), "history": history(results["train_loss"])})
    return folder


def seeds_run(folder: Path, accuracies: list[float], predictions: list[list[str]], **split) -> Path:
    """A finished --seeds run: one run folder per seed, config.yaml and the summary core.seeds writes;
    `split`: split_seed and seeds_vary_split, as a classifier's series records them."""
    seeds = list(range(1, len(accuracies) + 1))
    for seed, accuracy, predicted in zip(seeds, accuracies, predictions):
        finished_run(folder / f"seed-{seed}", predicted, test_accuracy=accuracy, seed=seed)
    config = {**CONFIG, "seeds": ",".join(map(str, seeds)), **split}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    write_summary(folder, seeds, kept=[], config=config)
    return folder


def compared(arguments: list, capsys) -> tuple[dict, str]:
    data = main([str(argument) for argument in arguments])
    return data, capsys.readouterr().out


def refusal(arguments: list, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(argument) for argument in arguments])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and "Traceback" not in captured.err
    [line] = [line for line in captured.err.splitlines() if line.strip()]
    assert line.startswith("error: ")
    return line


def test_two_runs_give_the_flags_that_differ_the_metrics_the_curves_and_the_texts_labelled_differently(tmp_path, capsys):
    low = finished_run(tmp_path / "lr-low", ["spam", "spam", "ham", "ham"], learning_rate=0.001, test_accuracy=0.5)
    high = finished_run(tmp_path / "lr-high", ["spam", "ham", "spam", "ham"], learning_rate=0.005, test_accuracy=1.0)
    data, out = compared([low, high, "--output", tmp_path / "cmp"], capsys)
    assert data["flags"] == {"learning_rate": [0.001, 0.005]}
    assert data["metrics"]["test_accuracy"] == {"lr-low": {"mean": 0.5, "std": None, "n": 1},
                                                "lr-high": {"mean": 1.0, "std": None, "n": 1}}  # fmt: skip
    assert "trainable" not in data["metrics"]
    assert data["flipped"]["shared"] == 4
    assert data["flipped"]["examples"] == [
        {"text": "lunch at noon?", "label": "ham", "predicted": {"lr-low": "spam", "lr-high": "ham"}},
        {"text": "free ringtone, reply", "label": "spam", "predicted": {"lr-low": "ham", "lr-high": "spam"}},
    ]
    assert data["flipped"]["right"] == {"lr-low": 0, "lr-high": 2}
    assert "| learning_rate | 0.001 | 0.005 |" in out and "| test_accuracy | 0.5000 | 1.0000 |  |" in out
    assert "No run has several seeds" in out
    report = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| lunch at noon? | ham | spam | ham |" in report and "![loss](loss.png)" in report
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text()) == json.loads(json.dumps(data))
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0, name


def test_without_output_only_the_tables_are_printed(tmp_path, capsys, monkeypatch):
    low = finished_run(tmp_path / "runs" / "a", ["spam"] * 4, learning_rate=0.001)
    high = finished_run(tmp_path / "runs" / "b", ["ham"] * 4, learning_rate=0.005)
    monkeypatch.chdir(tmp_path)
    _, out = compared([low, high], capsys)
    assert "## Flags that differ" in out and "Of the 4 test texts every run scored, 4 are labelled differently" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs"]


def test_a_difference_smaller_than_the_seed_spread_is_marked_and_a_larger_one_is_not(tmp_path, capsys):
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.7, 0.6], [["spam", "ham", "spam", "ham"]] * 3)  # std 0.1
    close = finished_run(tmp_path / "close", ["spam", "ham", "spam", "ham"], test_accuracy=0.65)
    far = finished_run(tmp_path / "far", ["spam", "ham", "spam", "ham"], test_accuracy=0.9)
    data, out = compared([seeded, close, far], capsys)
    assert data["metrics"]["test_accuracy"]["seeded"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 3}
    [pair] = data["within_seed_spread"]["test_accuracy"]
    assert pair["runs"] == ["seeded", "close"] and pair["difference"] == pytest.approx(0.05)
    assert "| test_accuracy | 0.6000 ± 0.1000 | 0.6500 | 0.9000 | seeded vs close (0.0500 < std 0.1000) |" in out
    assert data["flags"]["seed"] == [[1, 2, 3], 42, 42]  # a file without seed: TrainingArguments' default
    assert "seeds" not in data["flags"]  # the seed row says it
    assert "| seed | 1, 2, 3 | 42 | 42 |" in out  # the series' seeds, not 'each of --seeds' or '(default)'
    assert "| seeds |" not in out


def test_a_seeds_runs_label_for_a_text_is_the_one_most_seeds_gave(tmp_path, capsys):
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.5, 0.5], [["spam", "spam", "ham", "ham"],
                                                              ["spam", "spam", "spam", "ham"],
                                                              ["ham", "ham", "spam", "ham"]])  # fmt: skip
    single = finished_run(tmp_path / "single", ["spam", "ham", "spam", "ham"])
    data, _ = compared([seeded, single], capsys)
    assert data["flipped"]["examples"] == [
        {"text": "lunch at noon?", "label": "ham", "predicted": {"seeded": "spam", "single": "ham"}}]


def test_runs_without_test_predictions_say_so(tmp_path, capsys):
    old = finished_run(tmp_path / "old", None)
    new = finished_run(tmp_path / "new", ["spam"] * 4)
    data, out = compared([old, new], capsys)
    assert data["flipped"] == {"missing": str(old / TEST_PREDICTIONS)}
    assert f"{old / TEST_PREDICTIONS} does not exist" in out


def test_runs_of_another_dataset_are_refused_and_nothing_is_written(tmp_path, capsys):
    first = finished_run(tmp_path / "a", ["spam"] * 4)
    other = finished_run(tmp_path / "b", ["spam"] * 4, dataset="rotten_tomatoes")
    line = refusal([first, other, "--output", tmp_path / "cmp"], capsys)
    assert f"{first} trained on messages.csv and {other} on rotten_tomatoes" in line
    assert "different datasets" in line and not (tmp_path / "cmp").exists()


def test_runs_of_another_label_set_are_refused(tmp_path, capsys):
    first = finished_run(tmp_path / "a", ["spam"] * 4)
    other = finished_run(tmp_path / "b", ["spam"] * 4, labels=("ham", "spam", "scam"))
    line = refusal([first, other], capsys)
    assert "the labels ham, spam" in line and "ham, spam, scam" in line and "different label sets" in line


def unfinished_seeds(folder: Path) -> Path:
    finished_run(folder / "seed-1", ["spam"] * 4)
    return folder


def checkpoints_only(folder: Path) -> Path:
    (folder / "checkpoint-2").mkdir(parents=True)
    return folder


def model_without_results(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def run_without_results(folder: Path) -> Path:
    model_without_results(folder)
    (folder / "config.yaml").write_text("dataset: messages.csv\n")
    return folder


def checkpoint_of_a_finished_run(folder: Path) -> Path:
    finished_run(folder)
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "trainer_state.json").write_text("{}")
    return folder / "checkpoint-2"


def a_file(folder: Path) -> Path:
    folder.write_text("not a folder")
    return folder


def chat_comparison(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.yaml").write_text("dataset: null\n")
    atomic_write_json(folder / FINISHED_MARKER, {"methods": [{"method": "masked"}, {"method": "copy_labels"}]})
    return folder


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda folder: folder, "does not exist; pass the --output_dir of a finished run or of a --seeds run"),
        (a_file, "is a file"),
        (unfinished_seeds, "is a --seeds run that has not finished (no summary.json); run its command again"),
        (checkpoints_only, "holds checkpoints but no final model"),
        (run_without_results, "holds a saved model but no all_results.json"),
        (model_without_results, "holds a model that no run of hf-finetune trained (no config.yaml nor all_results.json"),
        (checkpoint_of_a_finished_run, "is a checkpoint, which has no results of its own; pass its run's folder"),
        (chat_comparison, "holds 2 chat loss methods (--compare)"),
    ],
)
def test_a_folder_that_is_no_finished_run_is_one_sentence(make, words, tmp_path, capsys):
    good = finished_run(tmp_path / "good", ["spam"] * 4)
    bad = make(tmp_path / "bad")
    line = refusal([good, bad, "--output", tmp_path / "cmp"], capsys)
    assert str(bad) in line and words in line, line
    if make in (model_without_results, checkpoint_of_a_finished_run):
        assert "did not finish" not in line
    assert not (tmp_path / "cmp").exists()


def test_a_damaged_test_predictions_file_names_its_line(tmp_path, capsys):
    good = finished_run(tmp_path / "good", ["spam"] * 4)
    damaged = finished_run(tmp_path / "damaged", ["spam"] * 4)
    with open(damaged / TEST_PREDICTIONS, "a") as file:
        file.write('{"text": "cut off\n')
    line = refusal([good, damaged], capsys)
    assert f"{damaged / TEST_PREDICTIONS}, line 5: not a test prediction" in line


def test_one_run_or_the_same_run_twice_is_refused(tmp_path, capsys):
    run = finished_run(tmp_path / "a", ["spam"] * 4)
    assert "compare needs two or more run folders" in refusal([run], capsys)
    assert f"{run} is given twice" in refusal([run, tmp_path / "." / "a"], capsys)


def test_an_output_folder_that_is_one_of_the_runs_is_refused(tmp_path, capsys):
    first, second = finished_run(tmp_path / "a", ["spam"] * 4), finished_run(tmp_path / "b", ["ham"] * 4)
    before = {path.name: path.read_bytes() for path in first.iterdir() if path.is_file()}
    assert "--output" in refusal([first, second, "--output", first], capsys)
    assert {path.name: path.read_bytes() for path in first.iterdir() if path.is_file()} == before


@pytest.mark.parametrize(
    "split, described, note",
    [
        ({"split": "0.7,0.1,0.2", "split_seed": 7, "seeds_vary_split": False}, "one data split for all (split seed 7)",
         "A --seeds run's label is the one most of its seeds gave."),
        ({"split": "0.7,0.1,0.2", "split_seed": None, "seeds_vary_split": True}, "each seed with its own data split",
         "tests each seed on other texts"),
        ({"split": "0.7,0.1,0.2"}, "each seed with its own data split", "tests each seed on other texts"),  # older series
    ],
)
def test_compare_says_whether_a_series_seeds_shared_one_split(split, described, note, tmp_path, capsys):
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.7], [["spam", "ham", "spam", "ham"]] * 2, **split)
    single = finished_run(tmp_path / "single", ["spam", "ham", "spam", "ham"])
    _, out = compared([seeded, single], capsys)
    assert f"- seeded: {seeded}, 2 seeds (1, 2), {described}" in out and note in out


def test_an_output_folder_that_is_a_model_is_named_as_one(tmp_path, capsys):
    first, second = finished_run(tmp_path / "a", ["spam"] * 4), finished_run(tmp_path / "b", ["ham"] * 4)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    line = refusal([first, second, "--output", model], capsys)
    assert f"--output: {model} is a model's folder, whose files compare would replace" in line
    assert sorted(path.name for path in model.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize(
    "figures, words",
    [
        ({"test_accuracy": float("nan")}, "its test_accuracy is nan, not a finite number"),
        ({"test_accuracy": 7.5}, "its test_accuracy is 7.5, outside [0, 1]"),
        ({"eval_f1": -0.1}, "its eval_f1 is -0.1, outside [0, 1]"),
        ({"train_loss": float("inf")}, "its train_loss is inf, not a finite number"),
        ({"test_accuracy": "0.7"}, "its test_accuracy is '0.7', not a number"),  # else left out of the table unseen
        ({"eval_loss": [1.0]}, "its eval_loss is [1.0], not a number"),
    ],
)
def test_a_figure_out_of_its_range_names_the_file_and_key(figures, words, tmp_path, capsys):
    good = finished_run(tmp_path / "good", ["spam"] * 4)
    bad = finished_run(tmp_path / "bad", ["spam"] * 4, **figures)
    line = refusal([good, bad], capsys)
    assert f"{bad / FINISHED_MARKER} is damaged ({words})" in line, line


@pytest.mark.parametrize("figure", [{"mean": float("nan"), "std": 0.1}, {"mean": 1.5, "std": 0.1},
                                    {"mean": 0.5, "std": float("inf")}])  # fmt: skip
def test_a_series_figure_out_of_its_range_names_the_summary(figure, tmp_path, capsys):
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.7], [["spam", "ham", "spam", "ham"]] * 2)
    summary = json.loads((seeded / "summary.json").read_text())
    summary["metrics"]["test_accuracy"] = figure
    (seeded / "summary.json").write_text(json.dumps(summary))
    line = refusal([seeded, finished_run(tmp_path / "single", ["spam"] * 4)], capsys)
    assert f"{seeded / 'summary.json'} is damaged (" in line and "test_accuracy" in line, line


def test_the_split_seed_is_a_setting_not_a_figure_to_average(tmp_path, capsys):
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.7], [["spam", "ham", "spam", "ham"]] * 2,
                       split="0.7,0.1,0.2", split_seed=3, seeds_vary_split=False)
    summary = json.loads((seeded / "summary.json").read_text())  # as a series of an older version wrote it
    summary["metrics"]["split_seed"] = {"mean": 1.5, "std": 0.7071, "min": 1, "max": 2}
    (seeded / "summary.json").write_text(json.dumps(summary))
    single = finished_run(tmp_path / "single", ["spam"] * 4, split_seed=42)
    data, out = compared([seeded, single], capsys)
    assert "split_seed" not in data["metrics"] and "| split_seed |" not in out.split("## Final metrics")[1]
    assert "test_accuracy" in data["metrics"]


def test_runs_may_follow_the_flags(tmp_path, capsys):
    first, second = finished_run(tmp_path / "a", ["spam"] * 4), finished_run(tmp_path / "b", ["ham"] * 4)
    data, _ = compared([first, "--output", tmp_path / "cmp", second], capsys)
    assert [run["folder"] for run in data["runs"]] == [str(first), str(second)]
    assert (tmp_path / "cmp" / "compare.md").is_file()


@pytest.mark.parametrize("empty, what", [(["--output", ""], "--output"), (["--output", " "], "--output"),
                                         ([""], "a run folder")])  # fmt: skip
def test_an_empty_folder_value_is_refused_not_read_as_the_current_folder(empty, what, tmp_path, capsys, monkeypatch):
    first, second = finished_run(tmp_path / "a", ["spam"] * 4), finished_run(tmp_path / "b", ["ham"] * 4)
    monkeypatch.chdir(tmp_path)
    line = refusal([first, second, *empty], capsys)
    assert line == f"error: {what} is empty; name a folder."
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]


def test_a_series_of_a_method_that_cuts_its_split_in_file_order_is_not_said_to_vary_it(tmp_path, capsys):
    """Instruction data and preference pairs: --split is fractions cut in file order, the same for every seed."""
    config = {"split": "0.85,0.05,0.10", "instruction_column": "instruction"}
    seeded = seeds_run(tmp_path / "seeded", [0.5, 0.7], [["spam", "ham", "spam", "ham"]] * 2, **config)
    single = finished_run(tmp_path / "single", ["spam", "ham", "spam", "ham"])
    _, out = compared([seeded, single], capsys)
    assert f"- seeded: {seeded}, 2 seeds (1, 2)\n" in out and "its own data split" not in out
