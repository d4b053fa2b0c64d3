"""Curves: the logged points of a run as a history (per step, epoch and examples seen), plotted as
PNG and PDF side by side."""

from __future__ import annotations

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
) -> list[Path]:
    """Plot `series` (history key -> legend) against epochs, with examples seen on a top axis
    (or anything else counted per epoch, e.g. tokens: pass its count and `top_label`).

    Writes PNG and PDF and returns their paths; nothing is drawn for series with no points.
    """
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    drawn = False
    for key, legend in series.items():
        xs = [point["epoch"] for point in history if key in point]
        ys = [point[key] for point in history if key in point]
        if xs:
            axis.plot(xs, ys, label=legend, marker="o" if len(xs) < 40 else None, markersize=3)
            drawn = True
    axis.set_xlabel("Epochs")
    axis.set_ylabel(ylabel)
    if drawn:
        axis.legend()
    top = axis.twiny()
    top.set_xlim(*(limit * examples_per_epoch for limit in axis.get_xlim()))
    top.set_xlabel(top_label)
    figure.tight_layout()
    return save_figure(figure, path_stem)


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
