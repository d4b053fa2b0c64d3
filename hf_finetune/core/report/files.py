"""Reports: the run folder a person looks at (atomic files, history, plots, markdown tables).

Every file is written to a temporary name and renamed, so a crash leaves the old file or the
new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FINISHED_MARKER = "all_results.json"


def _new_file_mode() -> int:
    """The mode a plain `open()` gives a new file (0644 under the usual umask 022), which the model
    files get; tempfile.mkstemp makes its files 0600, readable by their owner only. Read once, at
    import: the umask can only be read by setting it, which must not race with other threads."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


def mkstemp_like_open(path: Path, suffix: str) -> tuple[int, str]:
    """A temporary file beside `path`, to be renamed onto it, with the permissions of a plain new file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(handle, NEW_FILE_MODE)
    return handle, temporary


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = mkstemp_like_open(path, ".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


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


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
