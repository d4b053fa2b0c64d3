"""Curves: the logged points of a run as a history (per step, epoch and examples seen), plotted as
PNG and PDF side by side."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_finetune.core.report.files import mkstemp_like_open  # noqa: E402


def history_from_log(log_history: list[dict], examples_per_epoch: int) -> list[dict]:
    """One point per logged step: epoch, examples seen, training loss and every eval metric."""
    points: dict[int, dict] = {}
    for entry in log_history:
        if "step" not in entry or "epoch" not in entry:
            continue
        point = points.setdefault(entry["step"], {"step": entry["step"]})
        point["epoch"] = round(float(entry["epoch"]), 4)
        point["examples_seen"] = round(float(entry["epoch"]) * examples_per_epoch)
        for key, value in entry.items():
            if key == "loss":
                point["train_loss"] = value
            elif key.startswith("eval_") and isinstance(value, (int, float)):
                point[key] = value
    return [points[step] for step in sorted(points)]


def plot_curves(
    history: list[dict],
    series: dict[str, str],
    ylabel: str,
    path_stem: Path,
    examples_per_epoch: int,
    top_label: str = "Examples seen",
    bounds: tuple[float, float] | None = None,
) -> list[Path]:
    """Plot `series` (history key -> legend) against epochs, with examples seen on a top axis
    (or anything else counted per epoch, e.g. tokens: pass its count and `top_label`).
    `bounds`: the range the figure can take (accuracy: 0 to 1), shown whole.

    Writes PNG and PDF and returns their paths; nothing is drawn for series with no points, and a
    plot whose curves have fewer than MIN_CURVE_POINTS points says so on the image.
    """
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    counts, values = [], []
    for key, legend in series.items():
        xs = [point["epoch"] for point in history if key in point]
        ys = [point[key] for point in history if key in point]
        if xs:
            axis.plot(xs, ys, label=legend, marker="o" if len(xs) < 40 else None, markersize=3)
            counts.append(len(xs))
            values += ys
    axis.set_xlabel("Epochs")
    axis.set_ylabel(ylabel)
    if counts:
        axis.legend()
        set_readable_range(axis, values, bounds)
    few = max(counts, default=0) < MIN_CURVE_POINTS
    if few:  # under the plot, where it hides no point
        figure.text(0.5, 0.02, few_points_note(max(counts, default=0)), ha="center", va="bottom", fontsize=8,
                    color="firebrick")
    top = axis.twiny()
    top.set_xlim(*(limit * examples_per_epoch for limit in axis.get_xlim()))
    top.set_xlabel(top_label)
    figure.tight_layout(rect=(0, 0.12, 1, 1) if few else None)
    return save_figure(figure, path_stem)


MIN_CURVE_POINTS = 3


def few_points_note(points: int) -> str:
    return (f"{points} logged point{'' if points == 1 else 's'} per curve: too few to draw one.\n"
            "Train longer, or log and evaluate more often (--logging_steps, --eval_steps).")


def set_readable_range(axis, values: list[float], bounds: tuple[float, float] | None) -> None:
    """A y range that shows what changed at its true size: the whole of `bounds` when given, else
    at least a tenth of the values' size (two accuracies 0.531 and 0.537 are not a steep curve)."""
    finite = [value for value in values if math.isfinite(value)]
    if bounds is not None:
        margin = 0.03 * (bounds[1] - bounds[0])
        axis.set_ylim(bounds[0] - margin, bounds[1] + margin)
    elif finite:
        low, high = min(finite), max(finite)
        span = max(0.1 * max(abs(low), abs(high)), 1e-3)
        if high - low < span:
            middle = (low + high) / 2
            axis.set_ylim(middle - 0.55 * span, middle + 0.55 * span)


def save_figure(figure, path_stem: Path) -> list[Path]:
    """The figure as PNG and PDF beside `path_stem`, each written atomically; closes the figure."""
    written = []
    for suffix in (".png", ".pdf"):
        target = path_stem.with_suffix(suffix)
        handle, temporary = mkstemp_like_open(target, suffix)
        os.close(handle)
        figure.savefig(temporary, dpi=120)
        os.replace(temporary, target)
        written.append(target)
    plt.close(figure)
    return written
