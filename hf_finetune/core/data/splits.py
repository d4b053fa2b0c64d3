"""Splits: the train/validation/test names, and the two ways to cut them from one split.

- seeded: shuffle with the run's seed, then cut (the head and label-token methods; the class
  balance is undersampled first when asked);
- in file order: no shuffle, train first, then test, then validation (the book's instruction
  data).
"""

from __future__ import annotations

import math
from collections import Counter

import datasets
import numpy as np

from hf_finetune.core.errors import UserError

SPLITS = ("train", "validation", "test")
# Final metrics are reported as train_*, eval_* (validation) and test_*.
SPLIT_PREFIX = {"train": "train", "validation": "eval", "test": "test"}


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(v < 0 for v in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise UserError(f"--split: '{text}' must be three fractions train,validation,test that add up to 1.")
    return values  # type: ignore[return-value]


def balance_classes(split: dict[str, list], names: list[str], rng: np.random.Generator) -> tuple[dict[str, list], str]:
    """Undersample every class to the smallest class's count, keeping file order."""
    counts = Counter(split["label"])
    smallest = min(counts.get(label, 0) for label in range(len(names)))
    if smallest == 0:
        absent = [names[label] for label in range(len(names)) if counts.get(label, 0) == 0]
        raise UserError(f"--balance: the training data has no example of {', '.join(absent)}, so nothing is left.")
    labels = np.asarray(split["label"])
    keep: list[int] = []
    for label in range(len(names)):
        members = np.flatnonzero(labels == label)
        keep.extend(rng.choice(members, size=smallest, replace=False).tolist())
    keep.sort()
    before = ", ".join(f"{names[k]} {counts[k]}" for k in sorted(counts))
    return {key: [values[i] for i in keep] for key, values in split.items()}, (
        f"balanced {before} -> {smallest} per class"
    )


def seeded_split(
    split: dict[str, list], fractions: tuple[float, float, float], missing: list[str], rng: np.random.Generator
) -> dict[str, dict[str, list]]:
    """Shuffle with the seed and cut the missing validation/test splits off the training data."""
    total = len(split["label"])
    order = rng.permutation(total)
    wanted = {"train": fractions[0], "validation": fractions[1], "test": fractions[2]}
    parts = ["train", *missing]
    scale = sum(wanted[name] for name in parts)
    pieces: dict[str, dict[str, list]] = {}
    start = 0
    for position, name in enumerate(parts):
        end = total if position == len(parts) - 1 else start + int(total * wanted[name] / scale)
        pieces[name] = {key: [values[i] for i in order[start:end]] for key, values in split.items()}
        start = end
    return pieces


def file_order_split(
    checked: dict[str, datasets.Dataset], fractions: dict[str, float], missing: list[str]
) -> dict[str, datasets.Dataset]:
    """Cut the `missing` splits off the end of train in file order, without shuffling."""
    train = checked.pop("train")
    total = len(train)
    # The book: train = first 85%, test = next 10%, validation = the rest.
    kept = sum(fractions[name] for name in ["train", *missing])
    train_size = int(total * fractions["train"] / kept)
    sizes = {"train": train_size}
    if missing == ["test", "validation"]:
        sizes["test"] = int(total * fractions["test"] / kept)
        sizes["validation"] = total - train_size - sizes["test"]
    else:
        sizes[missing[0]] = total - train_size
    start = 0
    for name in ["train", *missing]:
        checked[name] = train.select(range(start, start + sizes[name]))
        start += sizes[name]
    return checked
