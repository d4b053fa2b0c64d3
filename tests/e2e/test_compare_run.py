"""hf_finetune.compare on real tiny runs: two head classifiers trained alike but for the learning rate
give the flag table, the curves and the test texts they label differently; a run of another dataset
is refused."""

from __future__ import annotations

import csv
import itertools
import json
import random

import pytest

from hf_finetune import classify, compare
from hf_finetune.core.errors import run_cli
from hf_finetune.core.report.files import FINISHED_MARKER

pytestmark = pytest.mark.usefixtures("one_thread")
RATES = {"lr-low": "1e-6", "lr-high": "5e-3"}


def write_messages(path, labels=("spam", "ham")) -> None:
    """32 distinct messages, 16 of each label, in a seeded order."""
    first = [f"{verb} {prize}, reply now" for verb, prize in itertools.product(
        ["win", "claim", "free", "urgent"], ["a cash prize", "a free ringtone", "tickets to the final", "a holiday"])]
    second = [f"{verb} {when}, ok?" for verb, when in itertools.product(
        ["see you", "call me", "meet me", "text me"], ["at lunch", "after work", "tomorrow morning", "at the station"])]
    rows = [(text, labels[0]) for text in first] + [(text, labels[1]) for text in second]
    random.Random(0).shuffle(rows)
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([("text", "label"), *rows])


def train(model, data, output, rate: str) -> None:
    classify.main([
        "--method", "head", "--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
        "--split", "0.5,0.25,0.25", "--trainable", "all", "--per_device_train_batch_size", "4", "--seed", "7",
        "--learning_rate", rate, "--max_steps", "8", "--logging_steps", "2", "--eval_strategy", "steps",
        "--eval_steps", "4", "--save_strategy", "no", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
        "--report_to", "none",
    ])  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gpt2):
    folder = tmp_path_factory.mktemp("compare")
    write_messages(folder / "messages.csv")
    for name, rate in RATES.items():
        train(tiny_gpt2, folder / "messages.csv", folder / name, rate)
    return folder


def predicted(run) -> dict[tuple[str, str], str]:
    rows = [json.loads(line) for line in (run / "test_predictions.jsonl").read_text().splitlines()]
    return {(row["text"], row["label"]): row["predicted"] for row in rows}


def test_two_learning_rates_give_the_flag_table_the_curves_and_the_texts_labelled_differently(runs, capsys):
    low, high, output = runs / "lr-low", runs / "lr-high", runs / "comparison"
    data = compare.main([str(low), str(high), "--output", str(output)])
    printed = capsys.readouterr().out
    assert data["flags"] == {"learning_rate": [1e-6, 5e-3]}
    assert "| learning_rate | 1e-06 | 0.005 |" in printed
    for name, run in (("lr-low", low), ("lr-high", high)):
        results = json.loads((run / FINISHED_MARKER).read_text())
        assert data["metrics"]["test_accuracy"][name] == {"mean": results["test_accuracy"], "std": None, "n": 1}
    # What the two runs' own test predictions say differs (the same seed: the same test texts).
    ours, theirs = predicted(low), predicted(high)
    assert ours.keys() == theirs.keys() and data["flipped"]["shared"] == len(ours) == 8
    expected = [{"text": text, "label": label, "predicted": {"lr-low": ours[key], "lr-high": theirs[key]}}
                for key in ours if ours[key] != theirs[key] for text, label in [key]]  # fmt: skip
    assert expected, "the two learning rates should label some test text differently"
    assert data["flipped"]["examples"] == expected
    report = (output / "compare.md").read_text()
    assert f"| {expected[0]['text']} | {expected[0]['label']} |" in report
    assert json.loads((output / "compare.json").read_text())["flipped"]["examples"] == expected
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf"):
        assert (output / name).stat().st_size > 0, name


def test_a_run_of_another_dataset_is_refused(runs, tiny_gpt2, capsys):
    write_messages(runs / "yes-no.csv", labels=("yes", "no"))
    train(tiny_gpt2, runs / "yes-no.csv", runs / "yes-no", "5e-3")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(compare.main, [str(runs / "lr-low"), str(runs / "yes-no"), "--output", str(runs / "refused")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error and error.count("error:") == 1
    assert f"on {runs / 'yes-no.csv'}: runs of different datasets cannot be compared" in error
    assert not (runs / "refused").exists()
