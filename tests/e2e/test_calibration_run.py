"""--calibrate end to end with a tiny GPT-2, for both classifier methods: the temperature fitted on
validation is saved with the model, and predict (and pipeline() for the head method) give the
probabilities the run measured with it, not those of the model as trained.

The data: two kinds of text, every fifth label flipped, so that no model is right everywhere
and the validation NLL has a minimum."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from transformers import pipeline

from hf_finetune import classify
from hf_finetune import predict as predict_tool
from hf_finetune.methods.classify.head.train import HeadMethod
from hf_finetune.methods.classify.label_token.train import LabelTokenMethod

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["calm", "alarm"]
PLACES = ["park", "cafe", "station", "library", "gym", "market", "office", "beach"]
METHODS = ["head", "label-token"]


def noisy_rows(count: int, start: int) -> list[dict]:
    rows = []
    for i in range(start, start + count):
        label = i % 2
        text = f"see you at the {PLACES[i % 8]} at {i % 12 + 1} pm, love {i}" if label == 0 else \
            f"WIN a free prize now, call {9000 + i} to claim cash {i}"  # fmt: skip
        rows.append({"text": text, "label": CLASSES[1 - label if i % 5 == 0 else label]})
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noisy")
    splits = {"train": noisy_rows(80, 0), "validation": noisy_rows(40, 1000), "test": noisy_rows(40, 2000)}
    for name, rows in splits.items():
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return folder, splits["test"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gpt2, data):
    folder, _ = data
    finished = {}
    with pytest.MonkeyPatch.context() as patch:
        # Not what these tests are about: the leakage check (core.leakage) is tested on its own.
        for method_class in (HeadMethod, LabelTokenMethod):
            patch.setattr(method_class, "split_texts", lambda self: None)
        for method in METHODS:
            output = tmp_path_factory.mktemp("runs") / method
            argv = [
                "--model_name_or_path", str(tiny_gpt2), "--dataset", str(folder), "--method", method,
                "--trainable", "all", "--learning_rate", "3e-3", "--num_train_epochs", "3",
                "--per_device_train_batch_size", "8", "--eval_strategy", "no", "--save_strategy", "no",
                "--train_eval_samples", "8", "--seed", "3", "--output_dir", str(output), "--calibrate",
                "--bf16", "false",  # predict and pipeline score in fp32: the run's figures must be fp32's to match to 1e-4
            ]  # fmt: skip
            results = classify.main(argv)
            finished[method] = output, results
    return finished


@pytest.mark.parametrize("method", METHODS)
def test_the_temperature_fitted_on_validation_is_saved_and_reported(runs, method):
    output, results = runs[method]
    temperature = results["calibration_temperature"]
    assert temperature and results["eval_nll_calibrated"] < results["eval_nll"]
    saved = json.loads((output / "all_results.json").read_text())
    for prefix in ("train", "eval", "test"):
        assert 0 <= saved[f"{prefix}_ece"] <= 1 and 0 <= saved[f"{prefix}_ece_calibrated"] <= 1
    if method == "head":
        assert json.loads((output / "config.json").read_text())["calibration_temperature"] == temperature
    else:
        assert json.loads((output / "label_token.json").read_text())["temperature"] == temperature
    report = (output / "report.md").read_text()
    assert f"temperature T = {temperature:.4f} fitted on the validation split" in report
    assert f"test ECE {results['test_ece']:.4f} -> {results['test_ece_calibrated']:.4f}" in report
    assert (output / "reliability.png").is_file() and (output / "reliability.pdf").is_file()


def nll_of(probabilities_of_truth: list[float]) -> float:
    return float(np.mean([-math.log(p) for p in probabilities_of_truth]))


@pytest.mark.parametrize("method", METHODS)
def test_predict_gives_the_probabilities_softmax_of_scores_over_t(runs, data, method, tmp_path, capsys):
    output, results = runs[method]
    _, test_rows = data
    # Only a temperature away from 1 tells calibrated probabilities from the model's own.
    assert abs(math.log(results["calibration_temperature"])) > 0.1
    assert abs(results["test_nll_calibrated"] - results["test_nll"]) > 1e-3
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(row["text"] + "\n" for row in test_rows), encoding="utf-8")
    predict_tool.main([str(output), "--file", str(texts), "--json"])
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [answer["text"] for answer in answers] == [row["text"] for row in test_rows]
    # Two classes: the probability of the true class follows from the predicted one's.
    truth = [a["probability"] if a["label"] == row["label"] else 1 - a["probability"] for a, row in zip(answers, test_rows)]
    assert nll_of(truth) == pytest.approx(results["test_nll_calibrated"], abs=1e-4)
    accuracy = np.mean([answer["label"] == row["label"] for answer, row in zip(answers, test_rows)])
    assert accuracy == pytest.approx(results["test_accuracy"])


def test_pipeline_gives_the_calibrated_probabilities_of_the_head_run(runs, data):
    output, results = runs["head"]
    _, test_rows = data
    classifier = pipeline("text-classification", model=str(output), top_k=None)
    scores = classifier([row["text"] for row in test_rows])
    truth = [next(item["score"] for item in answer if item["label"] == row["label"]) for answer, row in zip(scores, test_rows)]
    assert nll_of(truth) == pytest.approx(results["test_nll_calibrated"], abs=1e-4)
