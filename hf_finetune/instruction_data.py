"""Instruction data: Alpaca-style entries (instruction, input, output), their prompt format and splits.

The prompt format is the one of Stanford Alpaca and chapter 7 of "Build a Large Language Model
(From Scratch)"; an entry with an empty input has no input section:

    Below is an instruction that describes a task. Write a response that appropriately completes the request.

    ### Instruction:
    {instruction}

    ### Input:
    {input}

    ### Response:
    {output}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets

from .errors import UserError
from .preparation import SPLITS, parse_fractions
from .sources import SourceData

PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
INSTRUCTION_HEADER = "### Instruction:"
INPUT_HEADER = "### Input:"
RESPONSE_HEADER = "### Response:"
SECTION_HEADERS = (INSTRUCTION_HEADER, INPUT_HEADER, RESPONSE_HEADER)
FIELDS = ("instruction", "input", "output")


def format_request(instruction: str, input: str = "") -> str:
    """The preamble, the instruction and (only when non-empty) the input section."""
    text = f"{PREAMBLE}\n\n{INSTRUCTION_HEADER}\n{instruction}"
    if input and input.strip():
        text += f"\n\n{INPUT_HEADER}\n{input}"
    return text


def response_header() -> str:
    """What follows the request and precedes the response: the model answers after it."""
    return f"\n\n{RESPONSE_HEADER}\n"


def format_prompt(instruction: str, input: str = "") -> str:
    """Everything the model is given at generation time (it ends with the response header)."""
    return format_request(instruction, input) + response_header()


def format_example(entry: dict) -> str:
    """A whole training text: the prompt followed by the reference output."""
    return format_prompt(entry["instruction"], entry.get("input") or "") + entry["output"]


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
        checked = _cut_in_file_order(checked, fractions, missing)
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


def _cut_in_file_order(
    checked: dict[str, datasets.Dataset], fractions: dict[str, float], missing: list[str]
) -> dict[str, datasets.Dataset]:
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
