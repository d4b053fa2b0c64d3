"""Calibration of the classifier methods: do the probabilities mean what they say?

- Expected calibration error (ECE), measured by core/report/reliability.py.
- A reliability diagram per split (PNG and PDF): accuracy against confidence, bin by bin.
- `--calibrate`: temperature scaling. One scalar T > 0 fitted on the validation split's class
  scores by minimising their negative log-likelihood (NLL); the probabilities become
  softmax(scores / T), and the predicted classes do not change. A bounded scalar search on log T
  (scikit-learn's own temperature scaling does the same, but only inside CalibratedClassifierCV
  and only from version 1.8, and it takes any rows in [0, 1] that sum to 1 for probabilities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from torch import nn

from hf_finetune.core.data.splits import SPLIT_PREFIX, SPLITS
from hf_finetune.core.errors import UserError
from hf_finetune.core.report.curves import plt, save_figure
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.report.reliability import ECE_BINS, expected_calibration_error, reliability_bins

# Temperatures searched; an optimum at either end means the NLL has no minimum in between.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
RELIABILITY_PLOT = "reliability"
# Validation texts a temperature is fitted on: fewer than the first is refused (the fitted T follows a
# handful of texts, not the model), fewer than the second is warned of in the plan, report and summary.
MIN_CALIBRATION_EXAMPLES, FEW_CALIBRATION_EXAMPLES = 20, 100


def check_calibration_data(calibrate: bool, validation_size: int) -> None:
    """--calibrate needs a validation split large enough to fit a temperature on (refused before training)."""
    if calibrate and validation_size < MIN_CALIBRATION_EXAMPLES:
        raise UserError(
            f"--calibrate: the validation split has {validation_size} text(s); a temperature fitted on fewer than "
            f"{MIN_CALIBRATION_EXAMPLES} follows those few texts, not the model, and would be saved with it: give "
            f"validation more texts (--split, or a larger validation file), or drop --calibrate."
        )


def few_calibration_examples(validation_size: int) -> str | None:
    """The warning for a temperature fitted on few validation texts (None: enough of them)."""
    if validation_size >= FEW_CALIBRATION_EXAMPLES:
        return None
    return (f"fitted on only {validation_size} validation texts (under {FEW_CALIBRATION_EXAMPLES}): a rough "
            f"temperature, which may not lower the test ECE")


def calibration_plan(calibrate: bool, validation_size: int) -> dict[str, str]:
    """The plan's line for --calibrate."""
    if not calibrate:
        return {}
    few = few_calibration_examples(validation_size)
    return {"calibrate": f"a temperature fitted on the {validation_size} validation texts after training"
            + (f"; warning: {few}" if few else "")}  # fmt: skip


def class_nll(scores: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under softmax(scores / temperature)."""
    log_probabilities = log_softmax(np.asarray(scores, dtype=np.float64) / temperature, axis=-1)
    return float(-np.take_along_axis(log_probabilities, np.asarray(labels)[:, None], axis=-1).mean())


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The T in [MIN_TEMPERATURE, MAX_TEMPERATURE] that minimises the NLL of softmax(scores / T),
    or None when the NLL has no minimum inside (it keeps falling towards an end: e.g. every
    example right, whose NLL falls as T -> 0)."""
    def nll(log_temperature: float) -> float:
        return class_nll(scores, labels, math.exp(log_temperature))

    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-9})
    # Where the NLL only falls towards an end, the search stops near it (or on a plateau where the
    # NLL is 0 to float precision): no better than that end itself.
    if found.fun >= min(nll(low), nll(high)):
        return None
    return math.exp(found.x)


def class_head_layers(model: nn.Module) -> list[nn.Linear]:
    """The linear layers named `score` that give a causal LM classifier its class logits (GPT-2,
    Bloom, Llama, ...); under LoRA both copies PEFT keeps (the trained one and the original)."""
    return [
        module for name, module in model.named_modules() if isinstance(module, nn.Linear) and "score" in name.split(".")
    ]


def require_foldable_head(model: nn.Module, name: str) -> None:
    """Refuse --calibrate for a classifier whose logits no linear layer computes alone."""
    if not class_head_layers(model):
        raise UserError(
            f"--calibrate: the class head of {name} ({model.__class__.__name__}) is not one linear layer named "
            f"'score', so a temperature cannot be folded into it; drop --calibrate."
        )


def fold_temperature(model: nn.Module, temperature: float) -> None:
    """Divide the class head's weights (and bias) by T: its logits become logits / T exactly, so the
    saved model, pipeline() included, gives the calibrated probabilities. The config records T."""
    for layer in class_head_layers(model):
        layer.weight.data.div_(temperature)
        if layer.bias is not None:
            layer.bias.data.div_(temperature)
    model.config.calibration_temperature = temperature


@dataclass
class Calibration:
    """ECE and NLL of each split's class scores and, with --calibrate, the temperature fitted on
    the validation split (None: not asked for, or the NLL had no minimum)."""

    scores: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    calibrate: bool = False
    temperature: float | None = None

    @classmethod
    def of_outputs(cls, outputs: dict, class_scores, calibrate: bool) -> Calibration:
        """From the trainer's prediction output per split (as core.classification_report.evaluate_splits
        returns them); `class_scores` picks the per-class scores out of its predictions."""
        scores = {split: np.asarray(class_scores(out.predictions), dtype=np.float64) for split, out in outputs.items()}
        labels = {split: np.asarray(output.label_ids) for split, output in outputs.items()}
        calibration = cls(scores, labels, calibrate)
        if calibrate:
            calibration.temperature = fit_temperature(scores["validation"], labels["validation"])
        return calibration

    def probabilities(self, split: str, calibrated: bool = True) -> np.ndarray:
        temperature = self.temperature if calibrated and self.temperature else 1.0
        return softmax(self.scores[split] / temperature, axis=-1)

    def results(self) -> dict:
        """`{prefix}_ece` and `{prefix}_nll` per split; with a temperature, `calibration_temperature`
        and the `{prefix}_ece_calibrated`, `{prefix}_nll_calibrated` figures."""
        results: dict = {}
        for split in SPLITS:
            prefix, labels = SPLIT_PREFIX[split], self.labels[split]
            results[f"{prefix}_ece"] = expected_calibration_error(self.probabilities(split, calibrated=False), labels)
            results[f"{prefix}_nll"] = class_nll(self.scores[split], labels)
            if self.temperature:
                results[f"{prefix}_ece_calibrated"] = expected_calibration_error(self.probabilities(split), labels)
                results[f"{prefix}_nll_calibrated"] = class_nll(self.scores[split], labels, self.temperature)
        if self.calibrate:
            results["calibration_temperature"] = self.temperature
            results["calibration_examples"] = len(self.labels["validation"])
        return results

    def write_section(self, folder: Path, results: dict, used_by: str = "predict gives") -> str:
        """Write the reliability diagram (PNG, PDF) into `folder`; return report.md's calibration
        section. `used_by`: what gives the calibrated probabilities, e.g. "predict and pipeline() give"."""
        plot_reliability(self, folder / RELIABILITY_PLOT)
        temperature = self.temperature
        header = ["split", "examples", "ECE", "NLL"]
        if temperature:
            header += [f"ECE, T = {temperature:.3f}", f"NLL, T = {temperature:.3f}"]
        rows = []
        for split in SPLITS:
            prefix = SPLIT_PREFIX[split]
            keys = ["ece", "nll", "ece_calibrated", "nll_calibrated"] if temperature else ["ece", "nll"]
            rows.append([split, len(self.labels[split]), *(results[f"{prefix}_{key}"] for key in keys)])
        lines = [
            "## Calibration",
            (
                f"Do the probabilities mean what they say? ECE (expected calibration error): the examples in "
                f"{ECE_BINS} equal-width bins of confidence (the top class's probability), the mean of |accuracy - "
                "confidence| over the bins, weighted by their examples; 0 is perfectly calibrated. NLL: the mean "
                "negative log-likelihood of the true class."
            ),
            markdown_table(header, rows),
        ]
        if temperature:
            lines.append(
                f"`--calibrate`: temperature T = {temperature:.4f} fitted on the validation split (its NLL "
                f"{results['eval_nll']:.4f} -> {results['eval_nll_calibrated']:.4f}; test ECE {results['test_ece']:.4f} "
                f"-> {results['test_ece_calibrated']:.4f}). The saved model gives softmax(scores / T): {used_by} "
                "the calibrated probabilities; the predicted classes do not change."
            )
            few = few_calibration_examples(len(self.labels["validation"]))
            if few:
                lines.append(f"**Warning**: the temperature was {few}.")
        elif self.calibrate:
            lines.append(
                f"`--calibrate`: the validation NLL has no minimum for T between {MIN_TEMPERATURE} and "
                f"{MAX_TEMPERATURE:.0f} (it keeps falling towards one end, e.g. when every validation example is "
                "right), so the model was saved uncalibrated; a larger validation split gives a temperature."
            )
        lines.append(f"![reliability]({RELIABILITY_PLOT}.png)")
        return "\n\n".join(lines)


def calibration_headline(results: dict) -> dict[str, str]:
    """With --calibrate, the closing summary's calibration line: test ECE before -> after, or that no
    temperature was found and the model is saved uncalibrated."""
    if "calibration_temperature" not in results:
        return {}
    if not results["calibration_temperature"]:
        return {
            "test ECE": f"{results['test_ece']:.4f}, uncalibrated: --calibrate found no temperature (the validation "
            f"NLL has no minimum for T between {MIN_TEMPERATURE} and {MAX_TEMPERATURE:.0f}; see report.md)"
        }
    few = few_calibration_examples(results.get("calibration_examples", FEW_CALIBRATION_EXAMPLES))
    return {
        "test ECE": f"{results['test_ece']:.4f} -> {results['test_ece_calibrated']:.4f} "
        f"(T = {results['calibration_temperature']:.3f}" + (f"; warning: {few})" if few else ")")
    }


def probability_limit(results: dict) -> str:
    """The model card's limit about the probabilities, with the run's calibration figures."""
    if results.get("calibration_temperature"):
        return (
            f"Probabilities are temperature-scaled on the validation split (T = "
            f"{results['calibration_temperature']:.3f}; test ECE {results['test_ece']:.3f} -> "
            f"{results['test_ece_calibrated']:.3f}), yet still estimates: do not use them as certainties, nor the "
            "labels as sole decisions about people."
        )
    return (
        f"Probabilities are not calibrated (test ECE {results['test_ece']:.3f}); do not use them as certainties, nor "
        "the labels as sole decisions about people."
    )


def with_probability_limit(limits: list[str], results: dict) -> list[str]:
    """`limits` (core.classification_report.CLASSIFIER_LIMITS) with its probability line replaced by
    `probability_limit(results)`."""
    return [probability_limit(results) if line.startswith("Probabilities") else line for line in limits]


def plot_reliability(calibration: Calibration, path_stem: Path) -> list[Path]:
    """One panel per split: accuracy per confidence bin (bars: as trained; points: with T), and the
    diagonal a calibrated model follows. Writes PNG and PDF and returns their paths."""
    figure, axes = plt.subplots(1, len(SPLITS), figsize=(11, 3.6), sharey=True)
    width = 1.0 / ECE_BINS
    centres = (np.arange(ECE_BINS) + 0.5) * width
    for axis, split in zip(axes, SPLITS):
        labels, as_trained = calibration.labels[split], calibration.probabilities(split, calibrated=False)
        counts, _, accuracy = reliability_bins(as_trained, labels)
        filled = counts > 0
        title = f"{split} (ECE {expected_calibration_error(as_trained, labels):.3f}"
        axis.bar(centres[filled], accuracy[filled], width=width, edgecolor="black", alpha=0.6, label="as trained")
        if calibration.temperature:
            calibrated = calibration.probabilities(split)
            counts, confidence, accuracy = reliability_bins(calibrated, labels)
            filled = counts > 0
            axis.plot(confidence[filled], accuracy[filled], "o-", color="C3",
                      label=f"T = {calibration.temperature:.2f}")  # fmt: skip
            title += f" -> {expected_calibration_error(calibrated, labels):.3f}"
        axis.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_title(title + ")", fontsize=10)
        axis.set_xlabel("Confidence (top class probability)")
    axes[0].set_ylabel("Accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path_stem)
