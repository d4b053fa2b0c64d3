"""Calibration: ECE against values worked out by hand, temperature scaling on crafted logits, the
temperature folded into a class head (plain and under LoRA), and the report section."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from hf_finetune.core.model.lora import LoraArguments, apply_lora
from hf_finetune.core.report.reliability import expected_calibration_error
from hf_finetune.methods.classify.calibration import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    Calibration,
    class_nll,
    fit_temperature,
    fold_temperature,
    with_probability_limit,
)
from hf_finetune.methods.classify.report import CLASSIFIER_LIMITS


def test_ece_equals_the_value_worked_out_by_hand():
    probabilities = np.array([[0.55, 0.45], [0.42, 0.58], [0.25, 0.75], [0.10, 0.90], [0.90, 0.10], [0.03, 0.97]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    # Confidence = the top probability; 15 bins of width 1/15, each (lower, upper]:
    #   (8/15, 9/15]   0.55 right, 0.58 wrong: accuracy 1/2, confidence 0.565
    #   (11/15, 12/15] 0.75 right:             accuracy 1,   confidence 0.75
    #   (13/15, 14/15] 0.90 right, 0.90 wrong: accuracy 1/2, confidence 0.90
    #   (14/15, 1]     0.97 right:             accuracy 1,   confidence 0.97
    by_hand = (2 * abs(0.5 - 0.565) + 1 * abs(1 - 0.75) + 2 * abs(0.5 - 0.90) + 1 * abs(1 - 0.97)) / 6
    assert by_hand == pytest.approx(0.2016667, abs=1e-6)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(by_hand, abs=1e-12)


def test_ece_of_several_classes_uses_the_top_class_only():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    labels = np.array([0, 0])
    # 0.5 right in (7/15, 8/15]; 0.7 (class 2) wrong in (10/15, 11/15].
    assert expected_calibration_error(probabilities, labels) == pytest.approx((abs(1 - 0.5) + abs(0 - 0.7)) / 2)


def test_a_bin_whose_accuracy_matches_its_confidence_adds_nothing():
    probabilities = np.tile([0.3, 0.7], (10, 1))
    labels = np.array([1] * 7 + [0] * 3)  # 70% right at confidence 0.7
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probabilities, 1 - labels) == pytest.approx(0.4)  # 30% right at 0.7


def calibrated_scores(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose softmax is calibrated by construction: each label is drawn from it."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=1.5, size=(count, 3))
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    labels = (rng.random(count)[:, None] > probabilities.cumsum(axis=1)).sum(axis=1)
    return scores, labels


@pytest.mark.parametrize("sharpness", [4.0, 0.25], ids=["over-confident", "under-confident"])
def test_temperature_scaling_finds_the_scale_and_lowers_the_nll(sharpness):
    scores, labels = calibrated_scores(4000, seed=0)
    distorted = scores * sharpness
    temperature = fit_temperature(distorted, labels)
    assert temperature == pytest.approx(sharpness, rel=0.1)
    before, after = class_nll(distorted, labels), class_nll(distorted, labels, temperature)
    assert after < before - 0.05
    # The minimum: a step either way raises the NLL.
    assert after < class_nll(distorted, labels, temperature * 1.01)
    assert after < class_nll(distorted, labels, temperature / 1.01)
    scaled = np.exp(distorted / temperature) / np.exp(distorted / temperature).sum(axis=1, keepdims=True)
    raw = np.exp(distorted) / np.exp(distorted).sum(axis=1, keepdims=True)
    assert expected_calibration_error(scaled, labels) < expected_calibration_error(raw, labels) / 2


@pytest.mark.parametrize("right", [True, False], ids=["every example right", "every example wrong"])
def test_no_temperature_when_the_nll_has_no_minimum(right):
    # Every example right: the NLL keeps falling as T -> 0; every one wrong: as T -> infinity.
    scores = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    labels = np.array([0, 1, 0]) if right else np.array([1, 0, 1])
    towards_the_end = MIN_TEMPERATURE * 2 if right else MAX_TEMPERATURE / 2
    assert class_nll(scores, labels, towards_the_end) < class_nll(scores, labels, 1.0)
    assert fit_temperature(scores, labels) is None


def tiny_classifier(num_labels: int = 3) -> GPT2ForSequenceClassification:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=16, num_labels=num_labels,
                        pad_token_id=0)  # fmt: skip
    return GPT2ForSequenceClassification(config).eval()


INPUTS = torch.tensor([[5, 9, 13, 2], [7, 3, 0, 0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])


@pytest.mark.parametrize("lora", [False, True], ids=["full model", "LoRA"])
def test_folding_the_temperature_divides_the_logits(lora):
    model = tiny_classifier()
    if lora:
        model = apply_lora(model, LoraArguments(lora_r=2)).eval()
    with torch.no_grad():
        before = model(input_ids=INPUTS, attention_mask=MASK).logits
        fold_temperature(model, 2.5)
        after = model(input_ids=INPUTS, attention_mask=MASK).logits
    assert torch.allclose(after, before / 2.5, atol=1e-6)
    assert model.config.calibration_temperature == 2.5


def test_a_head_with_a_bias_is_folded_exactly():
    model = tiny_classifier()
    model.score = torch.nn.Linear(16, 3, bias=True)
    with torch.no_grad():
        before = model(input_ids=INPUTS, attention_mask=MASK).logits
        fold_temperature(model, 0.4)
        assert torch.allclose(model(input_ids=INPUTS, attention_mask=MASK).logits, before / 0.4, atol=1e-5)


class Output:
    def __init__(self, scores, labels):
        self.predictions, self.label_ids = scores, labels


def test_report_figures_and_the_reliability_diagram(tmp_path):
    splits = {split: calibrated_scores(300, seed) for seed, split in enumerate(("train", "validation", "test"))}
    outputs = {split: Output(scores * 3.0, labels) for split, (scores, labels) in splits.items()}
    calibration = Calibration.of_outputs(outputs, lambda scores: scores, calibrate=True)
    results = calibration.results()
    temperature = results["calibration_temperature"]
    assert temperature == pytest.approx(3.0, rel=0.25)
    for prefix in ("train", "eval", "test"):
        assert 0 <= results[f"{prefix}_ece_calibrated"] < results[f"{prefix}_ece"] <= 1
        assert results[f"{prefix}_nll_calibrated"] < results[f"{prefix}_nll"]
    test_scores, test_labels = outputs["test"].predictions, outputs["test"].label_ids
    assert results["test_nll_calibrated"] == pytest.approx(class_nll(test_scores, test_labels, temperature))
    assert np.allclose(calibration.probabilities("test").sum(axis=1), 1.0)
    assert (calibration.probabilities("test").argmax(1) == test_scores.argmax(1)).all()  # the classes stay

    section = calibration.write_section(tmp_path, results)
    assert f"temperature T = {temperature:.4f} fitted on the validation split" in section
    assert f"| test | 300 | {results['test_ece']:.4f} | {results['test_nll']:.4f} |" in section
    assert "![reliability](reliability.png)" in section
    for suffix in ("png", "pdf"):
        assert (tmp_path / f"reliability.{suffix}").stat().st_size > 1000


def test_without_calibrate_only_the_figures_of_the_model_as_trained():
    outputs = {split: Output(*calibrated_scores(50, seed)) for seed, split in enumerate(("train", "validation", "test"))}
    results = Calibration.of_outputs(outputs, lambda scores: scores, calibrate=False).results()
    assert set(results) == {f"{prefix}_{key}" for prefix in ("train", "eval", "test") for key in ("ece", "nll")}
    assert not math.isnan(results["test_ece"])


def test_the_model_card_limit_states_the_calibration():
    calibrated = {"test_ece": 0.12, "test_ece_calibrated": 0.05, "calibration_temperature": 1.8}
    limits = with_probability_limit(CLASSIFIER_LIMITS, calibrated)
    assert len(limits) == len(CLASSIFIER_LIMITS)
    assert [line for line in limits if line.startswith("Probabilities")] == [
        "Probabilities are temperature-scaled on the validation split (T = 1.800; test ECE 0.120 -> 0.050), yet "
        "still estimates: do not use them as certainties, nor the labels as sole decisions about people."
    ]
    uncalibrated = with_probability_limit(CLASSIFIER_LIMITS, {"test_ece": 0.12})
    assert any(line.startswith("Probabilities are not calibrated (test ECE 0.120)") for line in uncalibrated)
