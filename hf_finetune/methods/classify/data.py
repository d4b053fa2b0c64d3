"""Text classification data, shared by the head and label-token methods: `--dataset` and its
columns become checked train/validation/test splits of (text, label) with a label map.

Every problem names the file (or split), the place and the column. Places count as the user
does: the file's line for csv/tsv/jsonl files (line 1 is the first line, the header if there is
one), else the row counted from 1.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import TrainingArguments

from hf_finetune.core.data.leakage import first_copies
from hf_finetune.core.data.sources import SourceData, check_dataset_url, load_source
from hf_finetune.core.data.splits import SPLITS, balance_classes, parse_fractions, seeded_split
from hf_finetune.core.errors import UserError
from hf_finetune.methods.classify.arguments import DataArguments


@dataclass
class ClassificationData:
    splits: datasets.DatasetDict  # train/validation/test with columns `text` (str) and `label` (int)
    label_names: list[str]
    notes: list[str] = field(default_factory=list)
    split_seed: int | None = None  # the seed the split (and --balance) drew with; None: the data came split

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}

    def split_texts(self) -> dict[str, list[str]]:
        """Each split's texts, for the leakage check."""
        return {name: list(self.splits[name]["text"]) for name in SPLITS}

    def split_labels(self) -> dict[str, list[str]]:
        """Each split's class names, text by text (the leakage check counts leaked texts per class)."""
        return {name: [self.label_names[label] for label in self.splits[name]["label"]] for name in SPLITS}


def prepare_classification(
    source: SourceData,
    *,
    text_column: str = "text",
    label_column: str = "label",
    class_names: str | None = None,
    balance: bool = False,
    split: str = "0.7,0.1,0.2",
    seed: int = 42,
    dedupe: bool = False,
) -> ClassificationData:
    fractions = parse_fractions(split)
    flag_names = parse_class_names(class_names)
    unknown_splits = set(source.splits) - set(SPLITS)
    splits = {name: source.splits[name] for name in SPLITS if name in source.splits}
    if "train" not in splits:
        raise UserError(f"--dataset: {source.origin} has no 'train' split (it has {sorted(unknown_splits)}).")

    for name, data in splits.items():
        _check_columns(source.where(name), data, text_column, label_column)
    names = flag_names or _label_names(source, splits["train"], label_column)
    checked = {
        name: _checked_split(source, name, data, text_column, label_column, names) for name, data in splits.items()
    }
    counts = Counter(label for part in checked.values() for label in part["label"])
    absent = [name for position, name in enumerate(names) if counts[position] == 0]
    if absent:
        named_by = (
            "--class_names" if flag_names
            else "the registered dataset's label names" if source.label_names
            else f"the label feature of column '{label_column}'"
        )  # fmt: skip
        raise UserError(
            f"--dataset: {source.origin} has no example of the class{'es' if len(absent) > 1 else ''} "
            f"{', '.join(absent)} named by {named_by}; a class without examples cannot be learned or measured."
        )
    notes: list[str] = []
    before_dedupe = {name: Counter(part["label"]) for name, part in checked.items()}
    if dedupe:
        checked, note = _deduplicated(checked)
        notes.append(note)
    rng = np.random.default_rng(seed)
    if balance:
        checked["train"], note = balance_classes(checked["train"], names, rng)
        notes.append(note)
    missing = [name for name in ("validation", "test") if name not in checked]
    if missing:
        checked.update(seeded_split(checked.pop("train"), fractions, missing, rng))
        sizes = ", ".join(f"{name}={len(part['label'])}" for name, part in checked.items())
        notes.append(f"split {sizes} with split seed {seed}")

    result = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                checked[name],
                features=datasets.Features(
                    {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}
                ),
            )
            for name in SPLITS
        }
    )
    for name, data in result.items():
        cut_here = name in missing or (name == "train" and missing)
        if len(data) == 0 and not cut_here:
            raise UserError(
                f"--dataset: {source.where(name)} holds no rows; give the {name} split some, or leave it out."
            )
        if len(data) == 0:
            cut = f"--split {split}" + (" after --dedupe" if dedupe else "") + (" and --balance" if balance else "")
            raise UserError(
                f"--dataset: the {name} split is empty: {sum(len(d) for d in result.values())} rows are too few "
                f"for {cut}; use more data or other fractions" + (", or drop --dedupe." if dedupe else ".")
            )
    for name in SPLITS:
        counts = Counter(result[name]["label"])
        unseen = [label for position, label in enumerate(names) if counts[position] == 0]
        if unseen:
            seen = [label for position, label in enumerate(names) if counts[position]]
            cut = name in missing or (name == "train" and bool(missing))
            dropped = dedupe and any(before_dedupe.get(name, Counter())[names.index(label)] for label in unseen)
            raise UserError(_without_class(source, name, unseen, seen, cut, dropped, split, seed, dedupe, balance))
    split_seed = seed if missing or balance else None
    return ClassificationData(splits=result, label_names=names, notes=notes, split_seed=split_seed)


def _without_class(source: SourceData, name: str, unseen: list[str], seen: list[str], cut: bool, dropped: bool,
                   split: str, seed: int, dedupe: bool, balance: bool) -> str:  # fmt: skip
    """The refusal of a split without an example of every class: why it matters, and what made it so."""
    listed = f"has no example of {', '.join(map(repr, unseen))} (only of {', '.join(map(repr, seen))})"
    why = ("a classifier learns only the classes its training data shows" if name == "train" else
           "its accuracy, F1 and calibration would say nothing about the missing class")  # fmt: skip
    if dropped:
        return (f"--dedupe: the {name} split {listed} once duplicates are dropped (its texts of that class repeat "
                f"texts of another split); {why}: drop --dedupe, or give the {name} split texts of its own.")  # fmt: skip
    if cut:
        made = f"--split {split} with split seed {seed}" + (" after --dedupe" if dedupe else "") + (
            " and --balance" if balance else "")  # fmt: skip
        return (f"--dataset: the {name} split {listed}; {why}: it was cut by {made}, so use more data, other "
                f"fractions or another --split_seed.")  # fmt: skip
    return f"--dataset: the {name} split {listed}; {why}: give {source.where(name)} examples of every class."


def _deduplicated(checked: dict[str, dict[str, list]]) -> tuple[dict[str, dict[str, list]], str]:
    """--dedupe: each text once, kept in test if it is there, else validation, else train (its first copy)."""
    order = [name for name in ("test", "validation", "train") if name in checked]
    kept, note = first_copies({name: checked[name]["text"] for name in order})
    deduplicated = {
        name: {column: [values[index] for index in kept[name]] for column, values in part.items()}
        for name, part in checked.items()
    }
    return deduplicated, note


def parse_class_names(flag: str | None) -> list[str] | None:
    if flag is None:
        return None
    names = [name.strip() for name in flag.split(",")]
    if len(names) < 2 or any(not name for name in names) or len(set(names)) != len(names):
        raise UserError(f"--class_names: '{flag}' must name two or more distinct, non-empty classes.")
    return names


# More classes than this is a text or id column taken for labels, not a label set.
MAX_CLASSES = 1000


def _label_names(source: SourceData, train, label_column: str) -> list[str]:
    """The classes, named as the data writes them: words sorted, whole numbers in numeric order
    (labels 1 and 2 are two classes, "1" and "2")."""
    if source.label_names:
        return list(source.label_names)
    feature = train.features.get(label_column)
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    first_at: dict[str, int] = {}
    for index, value in enumerate(train[label_column]):
        if _present(value):
            first_at.setdefault(_label_key(value), index)
    for key, index in first_at.items():
        if isinstance(train[index][label_column], float) and not _is_integer(train[index][label_column]):
            raise UserError(
                f"--dataset: {source.place('train', index)}, column '{label_column}': label {key} is not a class "
                f"(labels are words or whole numbers); is '{label_column}' the label column?"
            )
    numbers = [key for key in first_at if _is_integer(key)]
    words = [key for key in first_at if not _is_integer(key)]
    if numbers and words:
        raise UserError(
            f"--dataset: column '{label_column}' mixes numbers and words as labels ('{numbers[0]}' at "
            f"{source.place('train', first_at[numbers[0]])}, '{words[0]}' at {source.place('train', first_at[words[0]])}); "
            f"use one kind, or name the classes in id order with --class_names."
        )
    names = sorted(numbers, key=int) if numbers else sorted(words)
    if len(names) < 2:
        raise UserError(
            f"--dataset: column '{label_column}' of {source.where('train')} holds only the label "
            f"{', '.join(repr(name) for name in names) or '(none)'}; a classifier needs examples of two or more classes."
        )
    rows = len(train)
    if len(names) > MAX_CLASSES or (len(names) > 2 and len(names) * 2 > rows):
        raise UserError(
            f"--dataset: column '{label_column}' of {source.where('train')} has {len(names)} distinct values in {rows} rows, "
            f"too many for classes; name the label column with --label_column."
        )
    return names


def _present(value) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, (float, np.floating)):
        return float(value).is_integer()
    if isinstance(value, str):
        try:
            return float(value).is_integer()
        except (ValueError, OverflowError):
            return False
    return False


def _label_key(value) -> str:
    """A label as a class name: 1, 1.0, "1" and "1.0" are the class "1"; words lose surrounding spaces."""
    if _is_integer(value):
        text = str(value).strip()
        return str(int(text)) if text.lstrip("-").isdigit() else str(int(float(value)))
    return str(value).strip()


def _check_columns(where: str, data, text_column: str, label_column: str) -> None:
    for column, flag in ((text_column, "--text_column"), (label_column, "--label_column")):
        if column not in data.column_names:
            raise UserError(
                f"--dataset: {where} has no column '{column}' (columns: {', '.join(data.column_names)}); "
                f"name the right one with {flag}."
            )
        feature = data.features[column]
        if not isinstance(feature, (datasets.Value, datasets.ClassLabel)):  # a list or an object per row
            held = "objects" if isinstance(feature, dict) else "lists" if "list" in type(feature).__name__.lower() or \
                isinstance(feature, datasets.Sequence) else "values of another kind"  # fmt: skip
            raise UserError(f"--dataset: {where}, column '{column}' holds {held}, not "
                            f"{'texts' if column == text_column else 'labels'}; give one text or number per "
                            f"row, or name another column with {flag}.")  # fmt: skip


def _checked_split(source: SourceData, split: str, data, text_column: str, label_column: str, names: list[str]) -> dict[str, list]:
    feature = data.features[label_column]
    raw_labels = data[label_column]
    if isinstance(feature, datasets.ClassLabel):  # ids of the feature's own names (-1: no label)
        raw_labels = [feature.int2str(value) if value is not None and value >= 0 else None for value in raw_labels]
    index = {name: position for position, name in enumerate(names)}
    texts, labels = [], []
    for row, (text, label) in enumerate(zip(data[text_column], raw_labels)):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"--dataset: {source.place(split, row)}, column '{text_column}': the text is empty.")
        if not _present(label):
            raise UserError(f"--dataset: {source.place(split, row)}, column '{label_column}': the label is missing.")
        key = _label_key(label)
        if key in index:
            label_id = index[key]
        elif _is_integer(label) and 0 <= int(key) < len(names):  # an id, with --class_names
            label_id = int(key)
        else:
            raise UserError(
                f"--dataset: {source.place(split, row)}, column '{label_column}': label '{label}' is not one of "
                f"{', '.join(names)} (or their ids 0-{len(names) - 1})."
            )
        texts.append(text)
        labels.append(label_id)
    return {"text": texts, "label": labels}


def check_data_arguments(data_args: DataArguments) -> None:
    """The data flags that need no data, checked before any is loaded."""
    parse_fractions(data_args.split)
    parse_class_names(data_args.class_names)
    if data_args.max_length is not None and data_args.max_length < 1:
        raise UserError(f"--max_length: {data_args.max_length} must be 1 or more (or unset for the model's context).")
    if data_args.split_seed is not None and not 0 <= data_args.split_seed < 2**32:
        raise UserError(f"--split_seed: {data_args.split_seed} must be between 0 and 2**32 - 1.")
    if data_args.train_eval_samples < 0:
        raise UserError(f"--train_eval_samples: {data_args.train_eval_samples} must not be negative.")
    check_dataset_url(data_args.dataset, data_args.dataset_url)
    if data_args.text_column == data_args.label_column:
        raise UserError(
            f"--text_column and --label_column both name '{data_args.text_column}'; the label needs its own column."
        )


def load_classification_data(data_args: DataArguments, training_args: TrainingArguments) -> ClassificationData:
    """`--dataset` loaded and prepared with the run's seed (the run skeleton calls it on the main
    process first, which downloads)."""
    check_data_arguments(data_args)
    source = load_source(
        data_args.dataset,
        url=data_args.dataset_url,
        cache_dir=data_args.cache_dir,
        columns=(data_args.text_column, data_args.label_column),
    )
    data = prepare_classification(
        source,
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        class_names=data_args.class_names,
        balance=data_args.balance,
        split=data_args.split,
        seed=training_args.seed if data_args.split_seed is None else data_args.split_seed,
        dedupe=data_args.dedupe,
    )
    data.notes.insert(0, source.origin)
    if data_args.split_seed is not None and data.split_seed is None:
        data.notes.append(f"it comes split, so --split_seed {data_args.split_seed} draws nothing (no effect)")
    return data
