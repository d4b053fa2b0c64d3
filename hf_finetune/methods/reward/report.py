"""Results of a reward run: held-out pairwise accuracy before and after training, the margin
distribution (a histogram), the calibration of the pairwise probability sigmoid(margin), the
training curves, and the report.

A pair's margin is score(prompt + chosen) - score(prompt + rejected); the pair is ranked right
when the margin is above 0. Trained with TRL's loss -log sigmoid(margin), sigmoid(margin) is the
model's probability that the chosen answer is the preferred one (Bradley-Terry), so its ECE says
whether those probabilities mean what they say.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from scipy.special import expit, log_expit

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.data.splits import SPLIT_PREFIX
from hf_finetune.core.report.curves import history_from_log, plot_curves, plt, save_figure
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.report.reliability import ECE_BINS, expected_calibration_error, reliability_bins
from hf_finetune.methods.text.prompt import format_request

HELD_OUT = ("validation", "test")
STAGES = ("before", "after")
SCORES_FILE = "test_scores.json"
MARGINS_PLOT, RELIABILITY_PLOT = "margins", "reliability"


def pairwise_probabilities(margins: np.ndarray) -> np.ndarray:
    """Each pair as a two-class prediction [P(rejected preferred), P(chosen preferred)], for ECE."""
    chosen = expit(np.asarray(margins, dtype=np.float64))
    return np.stack([1 - chosen, chosen], axis=-1)


def pair_figures(chosen: np.ndarray, rejected: np.ndarray, split: str, stage: str) -> dict[str, float]:
    """The split's pairwise accuracy, margin (mean, quartiles), ECE and NLL of sigmoid(margin), as
    <prefix>_<figure>_<stage> (flat: --seeds and compare summarise top-level numbers)."""
    margins = np.asarray(chosen, dtype=np.float64) - np.asarray(rejected, dtype=np.float64)
    prefix = SPLIT_PREFIX[split]
    quartiles = np.quantile(margins, [0.25, 0.5, 0.75])
    figures = {
        "pairwise_accuracy": float(np.mean(margins > 0)),
        "margin_mean": float(np.mean(margins)),
        "margin_q1": float(quartiles[0]),
        "margin_median": float(quartiles[1]),
        "margin_q3": float(quartiles[2]),
        "pairwise_ece": expected_calibration_error(pairwise_probabilities(margins), np.ones(len(margins), dtype=int)),
        "pairwise_nll": float(-np.mean(log_expit(margins))),
    }
    return {f"{prefix}_{name}_{stage}": value for name, value in figures.items()}


def reward_history(log_history: list[dict], pairs_per_epoch: int) -> list[dict]:
    """One point per logged step: the validation figures TRL logs (eval_loss, eval_accuracy, eval_margin,
    the scores' range), the running training loss, and the training batches' accuracy and margin as
    train_<name>."""
    history = history_from_log(log_history, pairs_per_epoch)
    by_step = {point["step"]: point for point in history}
    for entry in log_history:
        if "loss" in entry and entry.get("step") in by_step:
            for name in ("accuracy", "margin"):
                if name in entry:
                    by_step[entry["step"]][f"train_{name}"] = entry[name]
    for point in history:
        # TRL counts the tokens this process has trained on, from 0 again after a resume; all_results.json
        # has the run's own count (training_tokens).
        point.pop("eval_num_tokens", None)
    return history


def figures_table(results: dict) -> str:
    labels = {
        "pairwise_accuracy": "pairwise accuracy (margin > 0)",
        "margin_mean": "mean margin",
        "margin_median": "median margin (quartiles)",
        "pairwise_ece": f"ECE of sigmoid(margin) ({ECE_BINS} bins)",
        "pairwise_nll": "NLL, -log sigmoid(margin) (the loss)",
    }
    rows = []
    for key, label in labels.items():
        for split in HELD_OUT:
            prefix = SPLIT_PREFIX[split]
            cells = []
            for stage in STAGES:
                value = results[f"{prefix}_{key}_{stage}"]
                if key == "margin_median":
                    value = (f"{value:.3f} ({results[f'{prefix}_margin_q1_{stage}']:.3f} to "
                             f"{results[f'{prefix}_margin_q3_{stage}']:.3f})")  # fmt: skip
                cells.append(value if isinstance(value, str) else round(value, 4))
            rows.append([f"{split}: {label}", *cells])
    return markdown_table([f"held-out pairs ({results['sizes']['validation']} validation, {results['sizes']['test']} "
                           f"test)", "before training", "after training"], rows)  # fmt: skip


def plot_margins(margins: dict[str, np.ndarray], path_stem: Path) -> list[Path]:
    """The test margins before and after training, one histogram each, and the line at 0."""
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    low = min(float(values.min()) for values in margins.values())
    high = max(float(values.max()) for values in margins.values())
    edges = np.linspace(min(low, 0.0), max(high, 0.0) + 1e-9, 31)
    for stage, values in margins.items():
        axis.hist(values, bins=edges, alpha=0.55, label=f"{stage} training ({np.mean(values > 0):.0%} above 0)")
    axis.axvline(0, color="black", linewidth=1)
    axis.set_xlabel("Margin: score(chosen) - score(rejected)")
    axis.set_ylabel("Test pairs")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path_stem)


def plot_reliability(margins: np.ndarray, path_stem: Path) -> list[Path]:
    """Accuracy against confidence of the trained model's pairwise probabilities, bin by bin."""
    probabilities, labels = pairwise_probabilities(margins), np.ones(len(margins), dtype=int)
    counts, _, accuracy = reliability_bins(probabilities, labels)
    width = 1.0 / ECE_BINS
    centres = (np.arange(ECE_BINS) + 0.5) * width
    filled = counts > 0
    figure, axis = plt.subplots(figsize=(4.5, 3.6))
    axis.bar(centres[filled], accuracy[filled], width=width, edgecolor="black", alpha=0.6)
    axis.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(f"test pairs (ECE {expected_calibration_error(probabilities, labels):.3f})", fontsize=10)
    axis.set_xlabel("Confidence: max(p, 1 - p), p = sigmoid(margin)")
    axis.set_ylabel("Pairs ranked right")
    figure.tight_layout()
    return save_figure(figure, path_stem)


def scored_rows(entries: list[dict], scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Rows of test_scores.json: each test pair with its two scores before and after training."""
    rows = []
    for index, entry in enumerate(entries):
        row = {name: entry[name] for name in ("instruction", "input", "chosen", "rejected")}
        for stage in STAGES:
            chosen, rejected = scores[stage]
            row[f"chosen_score_{stage}"] = round(float(chosen[index]), 4)
            row[f"rejected_score_{stage}"] = round(float(rejected[index]), 4)
        rows.append(row)
    return rows


def write_reward_results(
    folder: Path, results: dict, history: list[dict], rows: list[dict], config: dict, title: str, report_examples: int
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(folder / SCORES_FILE, rows)
    margins = {stage: np.array([row[f"chosen_score_{stage}"] - row[f"rejected_score_{stage}"] for row in rows])
               for stage in STAGES}  # fmt: skip
    plot_margins(margins, folder / MARGINS_PLOT)
    plot_reliability(margins["after"], folder / RELIABILITY_PLOT)
    pairs = results["sizes"]["train"]
    curves = {
        "loss": ({"train_loss": "Training (running)", "eval_loss": "Validation"}, "Loss, -log sigmoid(margin)"),
        "accuracy": ({"train_accuracy": "Training (running)", "eval_accuracy": "Validation"}, "Pairwise accuracy"),
        "margin": ({"train_margin": "Training (running)", "eval_margin": "Validation"}, "Mean margin"),
    }
    for stem, (series, label) in curves.items():
        plot_curves(history, series, label, folder / stem, pairs, top_label="Pairs seen")
    examples = "\n\n".join(_example(index, row) for index, row in enumerate(rows[:report_examples]))
    report = "\n\n".join([
        f"# {title}",
        f"A reward model: the sequence classifier scores prompt + answer with one number, trained with TRL's "
        f"RewardTrainer on {pairs} pairs to score the chosen answer above the rejected one (loss -log "
        f"sigmoid(margin){_centring(results)}). `hf-finetune score` and `pipeline(\"text-classification\")` give "
        "the score of the folder's model.",
        figures_table(results),
        "Pairwise accuracy: the share of pairs whose chosen answer scores higher. ECE: sigmoid(margin) is the "
        f"model's probability that the chosen answer is preferred; the pairs in {ECE_BINS} equal-width bins of "
        "confidence, the mean |pairs ranked right - confidence| over the bins; 0 is perfectly calibrated.",
        f"Training took {results['train_runtime_seconds']:.1f} s.",
        f"## Margins and calibration\n\n![margins]({MARGINS_PLOT}.png)\n\n![reliability]({RELIABILITY_PLOT}.png)",
        "## Curves\n\n![loss](loss.png)\n\n![accuracy](accuracy.png)\n\n![margin](margin.png)",
        f"## Test pairs, scored\n\nAll of them: {SCORES_FILE}.\n\n{examples}",
        *([leakage_markdown(results["leakage"])] if "leakage" in results else []),
    ])  # fmt: skip
    atomic_write_text(folder / "report.md", report + "\n")
    # Written last: its presence marks the run as finished.
    atomic_write_json(folder / "all_results.json", {**results, "history": history})


def _centring(results: dict) -> str:
    coefficient = results.get("center_rewards_coefficient")
    return f" + {coefficient:g} x mean(score^2), which centres the scores on 0" if coefficient else ""


def _example(index: int, row: dict) -> str:
    def scores(answer: str) -> str:
        return f"score {row[f'{answer}_score_before']:.3f} before training, {row[f'{answer}_score_after']:.3f} after"

    return (f"### Test pair {index + 1}\n\n```text\n{format_request(row['instruction'], row['input'])}\n```\n\n"
            f"**Chosen** ({scores('chosen')}): {row['chosen']}\n\n"
            f"**Rejected** ({scores('rejected')}): {row['rejected']}")  # fmt: skip
