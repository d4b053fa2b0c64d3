"""Instruction data: Alpaca-style entries (instruction, optional input, output), checked and split."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from hf_finetune.core.errors import UserError
from hf_finetune.core.sources import SourceData, load_source
from hf_finetune.core.splits import SPLITS, file_order_split, parse_fractions

from .prompt import FIELDS


@dataclass
class InstructionData:
    splits: datasets.DatasetDict  # train/validation/test with columns instruction, input, output (str)
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.splits[name]) for name in SPLITS}


def prepare_instructions(source: SourceData, split: str = "0.85,0.05,0.10") -> InstructionData:
    """Check every entry and make train/validation/test.

    Data that comes as one split is cut in file order, without shuffling, as the book does:
    train first, then test, then validation (1100 entries -> 935 / 110 / 55 with 0.85,0.05,0.10).
    Splits the data already has are kept; a missing validation or test split is cut from the
    end of train the same way.
    """
    fractions = dict(zip(SPLITS, parse_fractions(split)))
    if "train" not in source.splits:
        raise UserError(f"--dataset: {source.origin} has no 'train' split (it has {sorted(source.splits)}).")
    checked = {
        name: _checked_split(source.files.get(name, f"{source.origin} [{name}]"), source.splits[name])
        for name in SPLITS
        if name in source.splits
    }
    notes = []
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
                f"--split: the {name} split is empty ({len(checked['train'])} train entries); "
                f"give it a larger fraction or use more data."
            )
    return InstructionData(splits=datasets.DatasetDict({name: checked[name] for name in SPLITS}), notes=notes)


def load_instruction_data(dataset: str, url: str | None, cache_dir: str | None, split: str) -> InstructionData:
    source = load_source(dataset, url=url, cache_dir=cache_dir)
    data = prepare_instructions(source, split)
    data.notes.insert(0, source.origin)
    return data


def _checked_split(where: str, data: datasets.Dataset) -> datasets.Dataset:
    missing = [name for name in ("instruction", "output") if name not in data.column_names]
    if missing:
        raise UserError(
            f"--dataset: {where} has no '{missing[0]}' column; instruction data needs instruction, output "
            f"and optionally input (it has {data.column_names})."
        )
    has_input = "input" in data.column_names
    rows = {name: [] for name in FIELDS}
    for row_number, entry in enumerate(data, start=1):
        for name in FIELDS:
            value = entry.get(name) if (name != "input" or has_input) else ""
            value = "" if value is None and name == "input" else value
            if not isinstance(value, str):
                raise UserError(
                    f"--dataset: {where} row {row_number} column '{name}' is {type(value).__name__}, not text."
                )
            if name != "input" and not value.strip():
                raise UserError(f"--dataset: {where} row {row_number} column '{name}' is empty.")
            rows[name].append(value)
    return datasets.Dataset.from_dict(rows)
