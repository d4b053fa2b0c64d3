"""Sources: a name, Hub id, URL, file or folder becomes a `datasets.DatasetDict`.

Whatever the source, the result has the columns the user's data has; the method's data module (the next
layer) checks and renames them. `label_names` travel with the data when the source knows them
(a registered dataset, or a `ClassLabel` feature).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from hf_finetune.core.data.download import fetch, hub_unreachable, offline_way_out
from hf_finetune.core.errors import UserError


@dataclass(frozen=True)
class RegisteredDataset:
    description: str
    hub_id: str | None = None
    urls: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    filename: str | None = None
    label_names: tuple[str, ...] | None = None


def check_dataset_url(dataset: str, dataset_url: str | None) -> None:
    """--dataset_url replaces the download address of a registered dataset only."""
    if dataset_url is not None and dataset not in REGISTRY:
        raise UserError(
            f"--dataset_url: only a registered dataset ({', '.join(REGISTRY)}) is downloaded, and --dataset "
            f"{dataset} is not one; drop --dataset_url."
        )


REGISTRY: dict[str, RegisteredDataset] = {
    "sms_spam": RegisteredDataset(
        description="UCI SMS Spam Collection (Almeida & Gomez Hidalgo, 2011)",
        urls=(
            "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip",
        ),
        # The original UCI archive (also the checksum HF datasets records for sms_spam), and the
        # repackaged archive UCI's current URL serves, which holds the identical SMSSpamCollection.
        sha256=(
            "1587ea43e58e82b14ff1f5425c88e17f8496bfcdb67a583dbff9eefaf9963ce3",
            "e0c5bd54da721b0058bfecedfd96dc0be0a323366ca99d4d694817493f47be90",
        ),
        filename="sms_spam_collection.zip",
        label_names=("ham", "spam"),
    ),
    "rotten_tomatoes": RegisteredDataset(
        description="Rotten Tomatoes sentence polarity (Pang & Lee, 2005)",
        hub_id="cornell-movie-review-data/rotten_tomatoes",
        label_names=("neg", "pos"),
    ),
    "instruction_data": RegisteredDataset(
        description="instruction-data.json, 1100 Alpaca-style entries (rasbt/LLMs-from-scratch, chapter 7)",
        urls=(
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/"
            "instruction-data.json",
        ),
        sha256=("7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",),
        filename="instruction-data.json",
    ),
    "preference_data": RegisteredDataset(
        description="instruction-data-with-preference.json, the same 1100 entries with a chosen (polite) and a "
        "rejected answer each (rasbt/LLMs-from-scratch, chapter 7, preference tuning with DPO)",
        urls=(
            "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/04_preference-tuning-with-dpo/"
            "instruction-data-with-preference.json",
        ),
        sha256=("305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",),
        filename="instruction-data-with-preference.json",
    ),
}

SPLIT_FILE_STEMS = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class SourceData:
    splits: datasets.DatasetDict
    origin: str
    label_names: list[str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    # The line each row starts on in its file, per split, where the rows are lines of text.
    lines: dict[str, list[int]] = field(default_factory=dict)

    def where(self, split: str) -> str:
        """The file a split was read from, or the dataset and split."""
        return self.files.get(split, f"{self.origin} [{split}]")

    def place(self, split: str, index: int) -> str:
        """Where row `index` of a split is, as the user counts: the line of a JSON-lines or csv file
        (line 1 is the first line, a csv header included), the entry of a JSON list, else the row."""
        where, lines = self.where(split), self.lines.get(split) or []
        if index < len(lines):
            return f"{where}, line {lines[index]}"
        if where.lower().endswith(".json"):
            return f"{where}, entry {index + 1}"
        return f"{where}, row {index + 1}"


def load_source(
    dataset: str,
    *,
    url: str | None = None,
    cache_dir: str | None = None,
    columns: tuple[str, str] = ("text", "label"),
) -> SourceData:
    """Resolve `--dataset` to data (see `DataArguments.dataset` for what it accepts)."""
    if dataset in REGISTRY:
        return _load_registered(dataset, REGISTRY[dataset], url, cache_dir, columns)
    path = Path(dataset).expanduser()
    if path.exists():
        return _load_path(path, columns)
    if _looks_like_path(dataset):
        raise UserError(f"--dataset: {dataset} does not exist.")
    return _load_hub(dataset, label_names=None)


def _looks_like_path(name: str) -> bool:
    """Hub ids are 'name' or 'owner/name'; more slashes, a leading ./ or ~, or a file suffix mean a path."""
    suffixes = FILE_FORMATS.keys() | {".zip", ".txt"}
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).suffix.lower() in suffixes


def _load_registered(
    name: str, entry: RegisteredDataset, url: str | None, cache_dir: str | None, columns: tuple[str, str]
) -> SourceData:
    labels = list(entry.label_names) if entry.label_names else None
    if entry.hub_id and not url:
        return _load_hub(entry.hub_id, label_names=labels)
    urls = (url,) if url else entry.urls
    archive = fetch(name, urls, entry.sha256, entry.filename, cache_dir)
    data = _load_path(archive, columns)
    data.origin = f"{name} ({entry.description}), {urls[0]}, cached at {archive}"
    data.label_names = labels
    return data


def _load_hub(hub_id: str, label_names: list[str] | None) -> SourceData:
    unreachable = hub_unreachable()
    try:
        splits = _load_cached_hub_dataset(hub_id) if unreachable else datasets.load_dataset(hub_id)
    except Exception as error:  # the Hub client raises many types; all mean the same to the user
        if unreachable:
            raise UserError(
                f"--dataset: could not load '{hub_id}' from the Hugging Face Hub: {unreachable} and it is not "
                f"in the local datasets cache; {offline_way_out()}."
            ) from None
        raise UserError(
            f"--dataset: could not load '{hub_id}' from the Hugging Face Hub ({error.__class__.__name__}); "
            f"check the name and your network, or pass a local file or folder with --dataset PATH."
        ) from None
    return SourceData(splits=splits, origin=f"Hub dataset {hub_id}", label_names=label_names)


def _load_cached_hub_dataset(hub_id: str) -> datasets.DatasetDict:
    """A Hub dataset from datasets' own cache, as with HF_HUB_OFFLINE=1: without its offline
    switch, datasets waits through huggingface_hub's retries before it looks in the cache."""
    offline = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True  # read on each call; set for this call only
    try:
        return datasets.load_dataset(hub_id)
    finally:
        datasets.config.HF_HUB_OFFLINE = offline


def _load_path(path: Path, columns: tuple[str, str]) -> SourceData:
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            try:
                loaded = datasets.load_from_disk(str(path))
            except Exception as error:  # missing or damaged Arrow files, a foreign dataset_info.json
                raise UserError(
                    f"--dataset: {path} looks like a save_to_disk folder but cannot be loaded "
                    f"({error.__class__.__name__}: {' '.join(str(error).split())[:200]}); save it again."
                ) from None
            splits = loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
            return SourceData(splits=splits, origin=f"save_to_disk folder {path}")
        return _load_split_folder(path, columns)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        table, member = _read_zip(path, columns)
        return SourceData(
            splits=datasets.DatasetDict(train=_to_dataset(table.frame)),
            origin=f"{path} (member {member})",
            files={"train": f"{path}:{member}"},
            lines={"train": table.lines},
        )
    if suffix in (".json", ".jsonl", ".parquet"):
        files = {"train": str(path)}
        splits, lines = _load_files(FILE_FORMATS[suffix], files)
        return SourceData(splits=splits, origin=str(path), files=files, lines=lines)
    table = _read_table(path, path.read_bytes(), suffix != ".csv", columns)
    return SourceData(
        splits=datasets.DatasetDict(train=_to_dataset(table.frame)),
        origin=str(path),
        files={"train": str(path)},
        lines={"train": table.lines},
    )


def _load_split_folder(folder: Path, columns: tuple[str, str]) -> SourceData:
    found: dict[str, Path] = {}
    for split, stems in SPLIT_FILE_STEMS.items():
        for candidate in sorted(folder.iterdir()):
            if candidate.stem.lower() in stems and candidate.suffix.lower() in FILE_FORMATS:
                found[split] = candidate
                break
    if "train" not in found:
        raise UserError(
            f"--dataset: folder {folder} has no train file (train.csv/.tsv/.json/.jsonl/.parquet) "
            f"and is not a save_to_disk folder."
        )
    formats = {FILE_FORMATS[file.suffix.lower()] for file in found.values()}
    if len(formats) > 1:
        raise UserError(f"--dataset: the split files in {folder} mix formats ({sorted(formats)}); use one.")
    files = {split: str(file) for split, file in found.items()}
    if formats == {"csv"}:
        # Read as a single csv/tsv file is: a duplicated header is an error, not a renamed column,
        # and every row keeps its line number.
        tables = {
            split: _read_table(file, file.read_bytes(), file.suffix.lower() == ".tsv", columns)
            for split, file in found.items()
        }
        splits = datasets.DatasetDict({split: _to_dataset(table.frame) for split, table in tables.items()})
        lines = {split: table.lines for split, table in tables.items()}
    else:
        splits, lines = _load_files(formats.pop(), files)
    return SourceData(splits=splits, origin=f"folder {folder}", files=files, lines=lines)


def _load_files(builder: str, files: dict[str, str]) -> tuple[datasets.DatasetDict, dict[str, list[int]]]:
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


def _read_zip(path: Path, columns: tuple[str, str]) -> tuple[Table, str]:
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
    return _read_table(Path(f"{path}:{member}"), raw, tab_separated, columns), member


@dataclass
class Table:
    frame: pd.DataFrame
    lines: list[int]  # the file line each row starts on, counted from 1 (the header is line 1)


def _read_table(path: Path, raw: bytes, tab_separated: bool, columns: tuple[str, str]) -> Table:
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


def _to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
    return datasets.Dataset.from_pandas(frame.astype(object), preserve_index=False)
