"""Text classification data, shared by the head and label-token methods: `--dataset` and its
columns become checked train/validation/test splits of (text, label) with a label map.

Every problem names the file (or split), the row and the column. Rows are counted from 1 over
the data rows, as a spreadsheet shows them below the header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import TrainingArguments

from .errors import UserError
from .sources import SourceData, load_source
from .splits import SPLITS, balance_classes, parse_fractions, seeded_split


@dataclass
class DataArguments:
    dataset: str = field(
        default="sms_spam",
        metadata={
            "help": "A registered name (sms_spam, rotten_tomatoes), a Hub dataset id, a local file "
            "(zip, tsv, csv, json, jsonl, parquet), a folder of split files, or a save_to_disk folder."
        },
    )
    dataset_url: str | None = field(
        default=None, metadata={"help": "Download a registered dataset from this URL instead of its usual one."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label."})
    class_names: str | None = field(
        default=None,
        metadata={"help": "Comma-separated class names in id order, e.g. 'ham,spam'. Default: from the data."},
    )
    balance: bool = field(
        default=False, metadata={"help": "Undersample every class to the size of the smallest (seeded)."}
    )
    split: str = field(
        default="0.7,0.1,0.2",
        metadata={"help": "train,validation,test fractions for data that comes as one split (seeded shuffle)."},
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (default: the model's context)."}
    )
    train_eval_samples: int = field(
        default=256,
        metadata={"help": "Training examples scored at each evaluation point (for the train accuracy curve)."},
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where downloads are cached (default: ~/.cache/hf_finetune)."}
    )



@dataclass
class ClassificationData:
    splits: datasets.DatasetDict  # train/validation/test with columns `text` (str) and `label` (int)
    label_names: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}


def prepare_classification(
    source: SourceData,
    *,
    text_column: str = "text",
    label_column: str = "label",
    class_names: str | None = None,
    balance: bool = False,
    split: str = "0.7,0.1,0.2",
    seed: int = 42,
) -> ClassificationData:
    fractions = parse_fractions(split)
    unknown_splits = set(source.splits) - set(SPLITS)
    splits = {name: source.splits[name] for name in SPLITS if name in source.splits}
    if "train" not in splits:
        raise UserError(f"--dataset: {source.origin} has no 'train' split (it has {sorted(unknown_splits)}).")

    names = _label_names(source, splits["train"], label_column, class_names)
    checked = {
        name: _checked_split(source.files.get(name, f"{source.origin} [{name}]"), data, text_column, label_column, names)
        for name, data in splits.items()
    }
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    if balance:
        checked["train"], note = balance_classes(checked["train"], names, rng)
        notes.append(note)
    missing = [name for name in ("validation", "test") if name not in checked]
    if missing:
        checked.update(seeded_split(checked.pop("train"), fractions, missing, rng))
        sizes = ", ".join(f"{name}={len(part['label'])}" for name, part in checked.items())
        notes.append(f"split {sizes} with seed {seed}")

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
        if len(data) == 0:
            raise UserError(f"--dataset: the {name} split is empty after balancing and splitting.")
    train_classes = set(result["train"]["label"])
    if len(train_classes) < 2:
        raise UserError(f"--dataset: the train split holds only the class '{names[train_classes.pop()]}'.")
    return ClassificationData(splits=result, label_names=names, notes=notes)


def _label_names(source: SourceData, train, label_column: str, flag: str | None) -> list[str]:
    if flag is not None:
        names = [name.strip() for name in flag.split(",")]
        if len(names) < 2 or any(not name for name in names) or len(set(names)) != len(names):
            raise UserError(f"--class_names: '{flag}' must name two or more distinct, non-empty classes.")
        return names
    if source.label_names:
        return list(source.label_names)
    feature = train.features.get(label_column)
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    if label_column not in train.column_names:
        return []  # reported with the file name by _checked_split
    values = [value for value in train[label_column] if _present(value)]
    if values and all(isinstance(value, str) and not value.strip().lstrip("-").isdigit() for value in values):
        return sorted(set(values))
    integers = {int(value) for value in values if _is_integer(value)}
    if integers and min(integers) >= 0:
        return [str(index) for index in range(max(integers) + 1)]
    raise UserError(
        f"--dataset: cannot tell the classes of column '{label_column}' in {source.origin}; pass --class_names."
    )


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def _checked_split(where: str, data, text_column: str, label_column: str, names: list[str]) -> dict[str, list]:
    for column, flag in ((text_column, "--text_column"), (label_column, "--label_column")):
        if column not in data.column_names:
            raise UserError(
                f"--dataset: {where} has no column '{column}' (columns: {', '.join(data.column_names)}); "
                f"name the right one with {flag}."
            )
    feature = data.features[label_column]
    raw_labels = data[label_column]
    if isinstance(feature, datasets.ClassLabel) and feature.names != names:
        raw_labels = [feature.int2str(value) for value in raw_labels]
    index = {name: position for position, name in enumerate(names)}
    texts, labels = [], []
    for row, (text, label) in enumerate(zip(data[text_column], raw_labels), start=1):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"--dataset: {where}, row {row}, column '{text_column}': the text is empty.")
        if not _present(label):
            raise UserError(f"--dataset: {where}, row {row}, column '{label_column}': the label is missing.")
        if isinstance(label, str) and label in index:
            label_id = index[label]
        elif _is_integer(label) and 0 <= int(label) < len(names):
            label_id = int(label)
        else:
            raise UserError(
                f"--dataset: {where}, row {row}, column '{label_column}': label '{label}' is not one of "
                f"{', '.join(names)} (or their ids 0-{len(names) - 1})."
            )
        texts.append(text)
        labels.append(label_id)
    return {"text": texts, "label": labels}


def load_classification_data(data_args: DataArguments, training_args: TrainingArguments) -> ClassificationData:
    """`--dataset` loaded and prepared with the run's seed (the run skeleton calls it on the main
    process first, which downloads)."""
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
        seed=training_args.seed,
    )
    data.notes.insert(0, source.origin)
    return data
