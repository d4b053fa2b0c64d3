"""Instruction data: Alpaca-style entries (instruction, optional input, output), checked and split."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from hf_finetune.core.data.files import json_type
from hf_finetune.core.data.leakage import first_copies
from hf_finetune.core.data.sources import SourceData, load_source
from hf_finetune.core.data.splits import SPLITS, file_order_split, parse_fractions
from hf_finetune.core.errors import UserError
from hf_finetune.methods.text.prompt import FIELDS, request_texts


@dataclass
class InstructionData:
    splits: datasets.DatasetDict  # train/validation/test with columns instruction, input, output (str)
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.splits[name]) for name in SPLITS}

    def split_texts(self) -> dict[str, list[str]]:
        """Each split's entries as text, for the leakage check."""
        return {name: entry_texts(self.splits[name]) for name in SPLITS}


def entry_texts(split: datasets.Dataset) -> list[str]:
    """Each entry's instruction, input (when there is one) and output, a line each: the entry without
    the Alpaca prompt's fixed words, which would make every entry look alike."""
    return request_texts(split, "output")


@dataclass(frozen=True)
class Columns:
    """Which columns of the user's data hold the instruction, the optional input and the output
    (--instruction_column, --input_column, --output_column)."""

    instruction: str = "instruction"
    input: str = "input"
    output: str = "output"

    def flag_of(self, field_name: str) -> str:
        return f"--{field_name}_column"


def prepare_instructions(
    source: SourceData, split: str = "0.85,0.05,0.10", columns: Columns = Columns(), dedupe: bool = False
) -> InstructionData:
    """Check every entry and make train/validation/test.

    Data that comes as one split is cut in file order, without shuffling, as the book does:
    train first, then test, then validation (1100 entries -> 935 / 110 / 55 with 0.85,0.05,0.10).
    Splits the data already has are kept; a missing validation or test split is cut from the
    end of train the same way. `dedupe` first drops exact and near duplicate entries (a test or
    validation entry stays, its copies leave train).
    """
    fractions = dict(zip(SPLITS, parse_fractions(split)))
    if "train" not in source.splits:
        raise UserError(f"--dataset: {source.origin} has no 'train' split (it has {sorted(source.splits)}).")
    train_file = source.files.get("train", "")
    if len(source.splits["train"]) == 1 and train_file.lower().endswith(".json") and \
            Path(train_file).read_text(encoding="utf-8").lstrip().startswith("{"):  # fmt: skip
        raise UserError(
            f"--dataset: {train_file} is one JSON object, not a list of entries; write the entries as a JSON "
            f"list [{{...}}, {{...}}] or one object per line (.jsonl)."
        )
    notes = []
    columns, note = _columns_for(source, columns)
    if note:
        notes.append(note)
    checked = {name: _checked_split(source, name, columns) for name in SPLITS if name in source.splits}
    if dedupe:
        order = [name for name in ("test", "validation", "train") if name in checked]
        kept, note = first_copies({name: entry_texts(checked[name]) for name in order}, what="entries")
        checked = {name: part.select(kept[name]) for name, part in checked.items()}
        notes.append(note)
    missing = [name for name in ("test", "validation") if name not in checked]
    if missing:
        checked = file_order_split(checked, fractions, missing)
        notes.append(
            f"cut {' and '.join(missing)} from the end of train in file order (no shuffle), "
            f"fractions train,validation,test = {split}"
        )
    for name in SPLITS:
        if len(checked[name]) == 0:
            raise UserError(
                f"--split: the {name} split is empty ({len(checked['train'])} train entries"
                + (" left after --dedupe" if dedupe else "") + "); give it a larger fraction or use more data"
                + (", or drop --dedupe." if dedupe else ".")
            )
    return InstructionData(splits=datasets.DatasetDict({name: checked[name] for name in SPLITS}), notes=notes)


def load_instruction_data(
    dataset: str, url: str | None, cache_dir: str | None, split: str, columns: Columns = Columns(), dedupe: bool = False
) -> InstructionData:
    source = load_source(dataset, url=url, cache_dir=cache_dir)
    data = prepare_instructions(source, split, columns, dedupe)
    data.notes.insert(0, source.origin)
    return data


def _columns_for(source: SourceData, columns: Columns) -> tuple[Columns, str | None]:
    """The columns to read, checked against the train split's; prompt/completion data is read as
    instruction/output when the default names are not there."""
    where = source.files.get("train", source.origin)
    have = source.splits["train"].column_names
    if columns == Columns() and not {"instruction", "output"} <= set(have) and {"prompt", "completion"} <= set(have):
        return Columns("prompt", "", "completion"), "prompt/completion data: prompt read as the instruction, completion as the output"
    for field_name in ("instruction", "output"):
        name = getattr(columns, field_name)
        if name not in have:
            _refuse_entries_that_are_not_objects(where)
            flag = columns.flag_of(field_name)
            way_out = f"name the column that holds the {field_name} with {flag}" if name == field_name else "pick one of those"
            raise UserError(
                f"{flag}: {where} has no '{name}' column (it has {', '.join(have) or 'none'}); "
                f"{way_out}."
            )
    if columns.input != "input" and columns.input not in have:  # the default input column is optional
        raise UserError(
            f"--input_column: {where} has no '{columns.input}' column (it has {', '.join(have)}); pick one of those, "
            f"or leave the flag out for entries without input."
        )
    return columns, None


def _refuse_entries_that_are_not_objects(where: str) -> None:
    """A JSON list of strings or lists loads as a 'text' column: name the entry instead."""
    path = Path(where)
    if path.suffix.lower() != ".json" or not path.is_file():
        return
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return
    if isinstance(loaded, list):
        for number, entry in enumerate(loaded, start=1):
            if not isinstance(entry, dict):
                raise UserError(
                    f"--dataset: {where}, entry {number} is {json_type(entry)}, "
                    f"not an object with the fields instruction and output."
                )


def _checked_split(source: SourceData, split: str, columns: Columns) -> datasets.Dataset:
    data = source.splits[split]
    where = source.where(split)
    for field_name in ("instruction", "output"):
        if getattr(columns, field_name) not in data.column_names:
            raise UserError(
                f"--dataset: {where} has no '{getattr(columns, field_name)}' column, unlike the train split "
                f"(it has {', '.join(data.column_names)})."
            )
    names = {field_name: getattr(columns, field_name) for field_name in FIELDS}
    rows = {name: [] for name in FIELDS}
    for index, entry in enumerate(data):
        for field_name in FIELDS:
            column = names[field_name]
            value = entry.get(column)
            if field_name == "input" and value is None:
                value = ""
            if value is None:
                raise UserError(
                    f"--dataset: {source.place(split, index)}: '{column}' is missing or null; every entry "
                    f"needs its {field_name} as text."
                )
            if not isinstance(value, str):
                raise UserError(
                    f"--dataset: {source.place(split, index)}: '{column}' is {json_type(value)}, "
                    f"not text."
                )
            if field_name != "input" and not value.strip():
                raise UserError(f"--dataset: {source.place(split, index)}: '{column}' is empty.")
            rows[field_name].append(value)
    return datasets.Dataset.from_dict(rows)
