"""Local data files read with a sentence for every problem, naming the file and the line as the user
counts (line 1 is the first line): csv and tsv (with their record lines), json and jsonl (repeated keys,
a field whose kind changes), a zip holding one such file, parquet."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from hf_finetune.core.errors import UserError

FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_files(builder: str, files: dict[str, str]) -> tuple[datasets.DatasetDict, dict[str, list[int]]]:
    """The splits, and for JSON-lines files the line each record is on."""
    lines = {}
    for split, file in files.items():
        if os.path.getsize(file) == 0:
            raise UserError(f"--dataset: {file} is empty.")
        if builder == "json" and (record_lines := _check_json(Path(file))):
            lines[split] = record_lines
    try:
        return datasets.load_dataset(builder, data_files=files), lines
    except Exception as error:
        cause = error.__cause__ or error
        # Arrow counts rows from 0 within a block: never show its "row N" as if it were ours.
        detail = re.sub(r"\s*in row \d+", "", str(cause).splitlines()[0][:200] if str(cause) else "")
        raise UserError(
            f"--dataset: could not read {', '.join(files.values())} as {builder} "
            f"({cause.__class__.__name__}: {detail.rstrip('.')})."
        ) from None


def _check_json(path: Path) -> list[int]:
    """Find JSON mistakes ourselves, at the line or entry a user can go to: Arrow's parser reports
    none (a syntax error, a byte-order mark, a key given twice, a field that is text in one record
    and a number in another). Returns the line of each record of a JSON-lines file ([] for a JSON list)."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise UserError(f"--dataset: {path} starts with a byte-order mark (BOM); save it as UTF-8 without one.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"--dataset: {path}, line {line}: not UTF-8 (byte {error.start}); convert the file to UTF-8."
        ) from None
    if not text.strip():
        raise UserError(f"--dataset: {path} is empty.")
    records: list[tuple[str, object]] = []  # (where, record)
    if path.suffix.lower() == ".json" and text.lstrip().startswith(("[", "{")):
        try:
            loaded = json.loads(text, object_pairs_hook=_refuse_repeated_keys)
        except json.JSONDecodeError as error:
            if not text.lstrip().startswith("{"):  # may still be JSON lines, checked below
                raise UserError(
                    f"--dataset: {path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})."
                ) from None
        except _RepeatedKey as repeated:
            raise UserError(f"--dataset: {path}: an object gives the key '{repeated.key}' twice; keep one.") from None
        else:
            if not isinstance(loaded, list):
                return []  # a single object: the methods that accept one say what they need
            records = [(f"entry {number}", entry) for number, entry in enumerate(loaded, start=1)]
    if not records:
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_refuse_repeated_keys)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"--dataset: {path}, line {number}, column {error.colno}: not valid JSON ({error.msg})."
                ) from None
            except _RepeatedKey as repeated:
                raise UserError(f"--dataset: {path}, line {number}: the key '{repeated.key}' appears twice; keep one.") from None
            if not isinstance(record, dict):
                raise UserError(f"--dataset: {path}, line {number}: each line must be a JSON object with named fields.")
            records.append((f"line {number}", record))
    _check_field_kinds(path, records)
    return [int(where.split()[1]) for where, _ in records if where.startswith("line ")]


class _RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen[key] = value
    return seen


JSON_TYPES = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}


def json_type(value) -> str:
    """A JSON value's kind as a message names it: text, a number, true/false, a list, an object, null."""
    if value is None:
        return "null"
    return next((name for kind, name in JSON_TYPES.items() if isinstance(value, kind)), type(value).__name__)


def _check_field_kinds(path: Path, records: list[tuple[str, object]]) -> None:
    """Arrow needs each field to hold one kind of value in every record: name the first record
    whose value is not of the kind most records have."""
    kinds: dict[str, Counter] = {}
    for _, record in records:
        if isinstance(record, dict):  # the method reading the list names other entries
            for key, value in record.items():
                if (kind := json_type(value)) != "null":  # a null fits any column
                    kinds.setdefault(key, Counter())[kind] += 1
    mixed = {key: counts.most_common(1)[0][0] for key, counts in kinds.items() if len(counts) > 1}
    if not mixed:
        return
    for where, record in records:
        for key, value in record.items() if isinstance(record, dict) else ():
            kind = json_type(value)
            if key in mixed and kind != "null" and kind != mixed[key]:
                raise UserError(
                    f"--dataset: {path}, {where}: '{key}' is {kind}, not {mixed[key]} as in the other records; "
                    f"give the field one kind of value in every record."
                )


def read_zip(path: Path, columns: tuple[str, str]) -> tuple[Table, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir() and Path(info.filename).name.lower() not in ("readme", "readme.txt", "license")
            ]
            if len(members) != 1:
                raise UserError(f"--dataset: {path} should hold one data file, found {members or 'none'}.")
            member = members[0]
            raw = archive.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise UserError(f"--dataset: {path} is not a readable zip archive ({error}).") from None
    tab_separated = not member.lower().endswith(".csv")
    return read_table(Path(f"{path}:{member}"), raw, tab_separated, columns), member


@dataclass
class Table:
    frame: pd.DataFrame
    lines: list[int]  # the file line each row starts on, counted from 1 (the header is line 1)


def read_table(path: Path, raw: bytes, tab_separated: bool, columns: tuple[str, str]) -> Table:
    """Read a csv/tsv the way pandas does (quotes honoured).

    A csv has a header row. A tab-separated file has one when its first row names `columns`
    (text and label); otherwise a two-column one is read as (label, text), the layout of the
    SMS Spam Collection.
    """
    if not raw.strip():
        raise UserError(f"--dataset: {path} is empty.")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"--dataset: {path} is UTF-16 text; convert it to UTF-8 first.")
    if b"\0" in raw[:8192]:
        raise UserError(f"--dataset: {path} is a binary file, not {'tab-separated' if tab_separated else 'CSV'} text.")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"--dataset: {path} is not UTF-8 (byte {error.start}, line {line}); convert it to UTF-8 first."
        ) from None
    separator = "\t" if tab_separated else ","
    first_line = text.lstrip("\n").split("\n", 1)[0]
    other = next((mark for mark in ("\t", ";", "|", ",") if mark != separator and mark in first_line), None)
    if separator not in first_line and other:
        names = {"\t": "tabs", ";": "';'", "|": "'|'", ",": "commas"}
        fix = "name it .csv" if other == "," else "name it .tsv" if other == "\t" else "save it with commas"
        raise UserError(
            f"--dataset: {path}, line 1: the columns are separated by {names[other]}, but those of a "
            f".{'tsv' if tab_separated else 'csv'} file by {names[separator]}; {fix}."
        )
    record_lines = _record_lines(text, separator)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, header=None, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        # pandas: "Expected 2 fields in line 7, saw 3", counting records (not lines) from 1.
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found and int(found[2]) <= len(record_lines):
            expected, record, seen = (int(value) for value in found.groups())
            raise UserError(
                f"--dataset: {path}, line {record_lines[record - 1]}: {seen} fields where line {record_lines[0]} "
                f"has {expected}; quote texts that hold a '{'tab' if tab_separated else ','}' character."
            ) from None
        raise UserError(f"--dataset: could not parse {path} ({' '.join(str(error).split())[:200]}).") from None
    except pd.errors.EmptyDataError as error:
        raise UserError(f"--dataset: could not parse {path} ({str(error).strip()[:200]}).") from None
    if len(record_lines) != len(frame):  # the csv module and pandas disagree on an odd file: count rows
        record_lines = list(range(1, len(frame) + 1))
    first_row = [str(value).strip() for value in frame.iloc[0]]
    if tab_separated and frame.shape[1] == 2 and not set(columns) <= set(first_row):
        frame.columns = ["label", "text"]
        return Table(frame, record_lines)
    seen_at: dict[str, int] = {}
    for position, name in enumerate(first_row, start=1):
        if name in seen_at:
            what = f"the column name '{name}'" if name else "an empty column name"
            raise UserError(
                f"--dataset: {path}, line {record_lines[0]} (the header): {what} appears twice "
                f"(columns {seen_at[name]} and {position}); give every column its own name."
            )
        seen_at[name] = position
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = first_row
    if frame.empty:
        raise UserError(f"--dataset: {path} has a header line but no data rows.")
    return Table(frame, record_lines[1:])


def _record_lines(text: str, separator: str) -> list[int]:
    """The line each csv/tsv record starts on (a quoted text may span lines; blank lines are skipped)."""
    starts, previous = [], 0
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    try:
        for row in reader:
            if row:
                starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        return []
    return starts


def to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
    return datasets.Dataset.from_pandas(frame.astype(object), preserve_index=False)
