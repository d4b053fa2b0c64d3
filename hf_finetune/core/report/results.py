"""A finished run's results files read back and checked for the shape their readers need, so that
a file cut off, hand-edited or of another version is one sentence naming it, not a traceback
further on: all_results.json (a JSON object; label_names texts; history points with numbers for
epoch and step; every figure finite, a fraction in [0, 1]) and a --seeds series' summary.json
(seeds, one folder per seed, a mean per metric).

Not every number in all_results.json is a figure of the run: SETTINGS are the ones that record how
it was run (the seed its data split was cut with), which a series neither averages nor compares."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hf_finetune.core.errors import UserError


def read_json(path: Path):
    """The JSON value in `path`, or one sentence saying it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} cannot be read ({error.__class__.__name__}); train that run again.") from None


def damaged(path: Path, why: str, way_out: str = "train that run again") -> UserError:
    return UserError(f"{path} is damaged ({why}); {way_out}.")


SETTINGS = frozenset({"seed", "split_seed"})  # numbers that are settings, not figures to average
# Figures that are fractions (accuracy 0.75, not 75), by the end of their name.
FRACTIONS = ("accuracy", "precision", "recall", "f1", "ece", "ece_calibrated", "format_adherence", "rougeL")


def figures(results: dict) -> dict[str, float]:
    """The numbers in `results` that are figures of the run (its SETTINGS left out)."""
    return {key: value for key, value in results.items() if is_number(value) and key not in SETTINGS}


def is_fraction(key: str) -> bool:
    return key == "accuracy" or key.endswith(tuple(f"_{name}" for name in FRACTIONS))


def figure_out_of_range(key: str, value) -> str | None:
    """Why `value` cannot be the figure `key` (None: it can)."""
    if not is_number(value):
        return f"its {key} is {value!r}, not a number"
    if not math.isfinite(value):
        return f"its {key} is {value}, not a finite number"
    if is_fraction(key) and not 0 <= value <= 1:
        return f"its {key} is {value}, outside [0, 1]"
    return None


def checked_results(path: Path) -> dict:
    """A finished run's all_results.json, checked for the shape compare reads: an object whose
    label_names are texts and whose history points are objects with numbers for epoch and step."""
    results = read_json(path)
    if not isinstance(results, dict):
        raise damaged(path, f"{type(results).__name__}, not an object")
    rows = results.get("methods")  # a chat run's figures are per loss method
    for row in [results, *(row for row in rows if isinstance(row, dict))] if isinstance(rows, list) else [results]:
        named = {key: value for key, value in row.items() if value is not None and (is_fraction(key) or
                 key.endswith(("_loss", "_nll")))}  # figures by their name: a text there would be left out unseen
        for key, value in {**figures(row), **named}.items():
            if why := figure_out_of_range(key, value):
                raise damaged(path, why)
    names = results.get("label_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(name, str) for name in names)):
        raise damaged(path, "its label_names are not a list of texts")
    history = results.get("history")
    histories = history.values() if isinstance(history, dict) else [history]
    for points in histories:
        if points is None:
            continue
        if not isinstance(points, list) or not all(isinstance(point, dict) for point in points):
            raise damaged(path, "its history is not a list of logged points")
        for point in points:
            if any(key in point and not is_number(point[key]) for key in ("epoch", "step", "examples_seen")):
                raise damaged(path, f"a history point has a non-number epoch or step: {point}")
    return results


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked_summary(path: Path) -> dict:
    """A --seeds run's summary.json, checked for the shape compare reads."""
    summary = read_json(path)
    way_out = "run the --seeds command again, which keeps the finished seeds and writes it anew"
    if not isinstance(summary, dict):
        raise damaged(path, f"{type(summary).__name__}, not an object", way_out)
    seeds, runs, metrics = summary.get("seeds"), summary.get("runs"), summary.get("metrics")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(seed, int) for seed in seeds):
        raise damaged(path, "its seeds are not a list of whole numbers", way_out)
    if not isinstance(runs, list) or len(runs) != len(seeds) or \
            not all(isinstance(run, dict) and isinstance(run.get("folder"), str) for run in runs):  # fmt: skip
        raise damaged(path, "its runs are not one object with a folder per seed", way_out)
    if any(Path(run["folder"]).is_absolute() or ".." in Path(run["folder"]).parts for run in runs):
        raise damaged(path, "a run's folder is not a folder inside the series", way_out)
    if not isinstance(metrics, dict) or not all(
        isinstance(figures, dict) and is_number(figures.get("mean")) and
        (figures.get("std") is None or is_number(figures.get("std"))) for figures in metrics.values()
    ):  # fmt: skip
        raise damaged(path, "its metrics are not a mean and std per metric", way_out)
    for key, spread in metrics.items():
        why = figure_out_of_range(key, spread["mean"])
        if why is None and spread.get("std") is not None and not math.isfinite(spread["std"]):
            why = f"the std of its {key} is {spread['std']}, not a finite number"
        if why:
            raise damaged(path, why, way_out)
    return summary
