"""Preference data: pairs of a chosen and a rejected answer to one Alpaca-style instruction (with an
optional input), checked and split."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from hf_finetune.core.data.files import json_type
from hf_finetune.core.data.leakage import first_copies
from hf_finetune.core.data.sources import SourceData, load_source
from hf_finetune.core.data.splits import SPLITS, file_order_split, parse_fractions
from hf_finetune.core.errors import UserError
from hf_finetune.methods.text.pair_arguments import PairColumns
from hf_finetune.methods.text.prompt import request_texts

FIELDS = ("instruction", "input", "chosen", "rejected")
ANSWERS = {"chosen": "preferred answer", "rejected": "answer to move away from"}
REGISTERED = "preference_data"  # the book's file: its 6 pairs with chosen == rejected are left out by default


@dataclass
class PreferenceData:
    # train/validation/test with columns instruction, input, chosen, rejected (text) and `place`, where the
    # pair is in the user's data ("data.json, entry 12"), for messages about it
    splits: datasets.DatasetDict
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.splits[name]) for name in SPLITS}

    def split_texts(self) -> dict[str, list[str]]:
        """Each split's pairs as text, for the leakage check."""
        return {name: pair_texts(self.splits[name]) for name in SPLITS}


def pair_texts(split: datasets.Dataset) -> list[str]:
    """Each pair's instruction, input (when there is one) and chosen answer, a line each, as the
    instruction method compares its entries: without the Alpaca prompt's fixed words, which would
    make every pair look alike."""
    return request_texts(split, "chosen")


def load_preference_data(
    dataset: str,
    url: str | None,
    cache_dir: str | None,
    split: str = "0.85,0.05,0.10",
    columns: PairColumns = PairColumns(),
    drop_identical_pairs: bool | None = None,
    dedupe: bool = False,
) -> PreferenceData:
    fractions = dict(zip(SPLITS, parse_fractions(split)))  # a bad --split costs no download
    source = load_source(dataset, url=url, cache_dir=cache_dir)
    drop = dataset == REGISTERED if drop_identical_pairs is None else drop_identical_pairs
    data = prepare_pairs(source, fractions, split, columns, drop, dedupe)
    data.notes.insert(0, source.origin)
    return data


def prepare_pairs(
    source: SourceData,
    fractions: dict[str, float],
    split: str,
    columns: PairColumns,
    drop_identical_pairs: bool,
    dedupe: bool = False,
) -> PreferenceData:
    """Check every pair and make train/validation/test: one-split data is cut in file order as the
    book does (train first, then test, then validation: 1100 pairs -> 935 / 110 / 55). `dedupe`
    first drops exact and near duplicate pairs (a test or validation pair stays, its copies leave train)."""
    if "train" not in source.splits:
        raise UserError(f"--dataset: {source.origin} has no 'train' split (it has {sorted(source.splits)}).")
    notes = []
    columns, note = _columns_for(source, columns)
    if note:
        notes.append(note)
    checked = {name: _checked_split(source, name, columns, drop_identical_pairs) for name in SPLITS if name in source.splits}
    if dedupe:
        order = [name for name in ("test", "validation", "train") if name in checked]
        kept, note = first_copies({name: pair_texts(checked[name]) for name in order}, what="pairs")
        checked = {name: part.select(kept[name]) for name, part in checked.items()}
        notes.append(note)
    missing = [name for name in ("test", "validation") if name not in checked]
    if missing:
        checked = file_order_split(checked, fractions, missing)
        notes.append(f"cut {' and '.join(missing)} from the end of train in file order (no shuffle), "
                     f"fractions train,validation,test = {split}")  # fmt: skip
    if drop_identical_pairs:
        kept = {name: data.filter(lambda row: not _identical(row), keep_in_memory=True) for name, data in checked.items()}
        dropped = {name: len(checked[name]) - len(kept[name]) for name in SPLITS}
        if any(dropped.values()):
            notes.append(f"left out {sum(dropped.values())} pair(s) whose chosen and rejected answers are the same text ("
                         + ", ".join(f"{name} {count}" for name, count in dropped.items()) + ")")  # fmt: skip
        checked = kept
    for name in SPLITS:
        if len(checked[name]) == 0:
            raise UserError(
                f"--split: the {name} split is empty ({len(checked['train'])} train pairs"
                + (" left after --dedupe" if dedupe else "") + "); give it a larger fraction or use more data"
                + (", or drop --dedupe." if dedupe else ".")
            )
    return PreferenceData(splits=datasets.DatasetDict({name: checked[name] for name in SPLITS}), notes=notes)


def _columns_for(source: SourceData, columns: PairColumns) -> tuple[PairColumns, str | None]:
    """The columns to read, checked against the train split's; prompt/chosen/rejected data has its
    prompt read as the instruction when the default names are not there."""
    where = source.files.get("train", source.origin)
    have = source.splits["train"].column_names
    if columns == PairColumns() and "instruction" not in have and "prompt" in have:
        columns = PairColumns(instruction="prompt", input="")
        note = "prompt/chosen/rejected data: prompt read as the instruction"
    else:
        note = None
    for field_name, what in (("instruction", "instruction"), *ANSWERS.items()):
        name = getattr(columns, field_name)
        if name not in have:
            flag = f"--{field_name}_column"
            way_out = f"name the column that holds the {what} with {flag}" if name == field_name else "pick one of those"
            raise UserError(f"{flag}: {where} has no '{name}' column (it has {', '.join(have) or 'none'}); {way_out}.")
    if columns.input not in ("input", "") and columns.input not in have:  # the default input column is optional
        raise UserError(
            f"--input_column: {where} has no '{columns.input}' column (it has {', '.join(have)}); pick one of those, "
            f"or leave the flag out for pairs without input."
        )
    return columns, note


def _identical(row: dict) -> bool:
    return row["chosen"].strip() == row["rejected"].strip()


def _checked_split(source: SourceData, split: str, columns: PairColumns, drop_identical_pairs: bool) -> datasets.Dataset:
    data = source.splits[split]
    where = source.where(split)
    for field_name in ("instruction", *ANSWERS):
        if getattr(columns, field_name) not in data.column_names:
            raise UserError(
                f"--dataset: {where} has no '{getattr(columns, field_name)}' column, unlike the train split "
                f"(it has {', '.join(data.column_names)})."
            )
    rows: dict[str, list[str]] = {name: [] for name in (*FIELDS, "place")}
    for index, entry in enumerate(data):
        place = source.place(split, index)
        for field_name in FIELDS:
            column = getattr(columns, field_name)
            value = entry.get(column) if column else ""
            if field_name == "input" and value is None:
                value = ""
            if value is None:
                raise UserError(
                    f"--dataset: {place}: '{column}' is missing or null; every pair needs its {field_name} as text."
                )
            if not isinstance(value, str):
                chat = " (message lists are not supported: give each answer as one text)" if isinstance(value, list) else ""
                raise UserError(f"--dataset: {place}: '{column}' is {json_type(value)}, not text{chat}.")
            if field_name != "input" and not value.strip():
                raise UserError(f"--dataset: {place}: '{column}' is empty; every pair needs its {field_name} as text.")
            rows[field_name].append(value)
        rows["place"].append(place)
        if not drop_identical_pairs and rows["chosen"][-1].strip() == rows["rejected"][-1].strip():
            raise UserError(
                f"--dataset: {place}: '{columns.chosen}' and '{columns.rejected}' are the same text, so the pair prefers "
                f"nothing; make them differ, or pass --drop_identical_pairs true to leave such pairs out."
            )
    return datasets.Dataset.from_dict(rows)
