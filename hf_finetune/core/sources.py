"""Sources: a name, Hub id, URL, file or folder becomes a `datasets.DatasetDict`.

Whatever the source, the result has the columns the user's data has; the method's data module (the next
layer) checks and renames them. `label_names` travel with the data when the source knows them
(a registered dataset, or a `ClassLabel` feature).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from .download import fetch
from .errors import UserError


@dataclass(frozen=True)
class RegisteredDataset:
    description: str
    hub_id: str | None = None
    urls: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    filename: str | None = None
    label_names: tuple[str, ...] | None = None


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
    try:
        splits = datasets.load_dataset(hub_id)
    except Exception as error:  # the Hub client raises many types; all mean the same to the user
        raise UserError(
            f"--dataset: could not load '{hub_id}' from the Hugging Face Hub ({error.__class__.__name__}); "
            f"check the name and your network, or pass a local file or folder with --dataset PATH."
        ) from None
    return SourceData(splits=splits, origin=f"Hub dataset {hub_id}", label_names=label_names)


def _load_path(path: Path, columns: tuple[str, str]) -> SourceData:
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            loaded = datasets.load_from_disk(str(path))
            splits = loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
            return SourceData(splits=splits, origin=f"save_to_disk folder {path}")
        return _load_split_folder(path, columns)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        frame, member = _read_zip(path, columns)
        return SourceData(
            splits=datasets.DatasetDict(train=_to_dataset(frame)),
            origin=f"{path} (member {member})",
            files={"train": f"{path}:{member}"},
        )
    if suffix in (".json", ".jsonl", ".parquet"):
        return SourceData(
            splits=_load_files(FILE_FORMATS[suffix], {"train": str(path)}),
            origin=str(path),
            files={"train": str(path)},
        )
    frame = _read_table(path, path.read_bytes(), suffix != ".csv", columns)
    return SourceData(splits=datasets.DatasetDict(train=_to_dataset(frame)), origin=str(path), files={"train": str(path)})


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
    if formats == {"csv"} and any(file.suffix.lower() == ".tsv" for file in found.values()):
        frames = {split: _read_table(file, file.read_bytes(), True, columns) for split, file in found.items()}
        splits = datasets.DatasetDict({split: _to_dataset(frame) for split, frame in frames.items()})
    else:
        splits = _load_files(formats.pop(), {split: str(file) for split, file in found.items()})
    return SourceData(splits=splits, origin=f"folder {folder}", files={s: str(f) for s, f in found.items()})


def _load_files(builder: str, files: dict[str, str]) -> datasets.DatasetDict:
    for file in files.values():
        if os.path.getsize(file) == 0:
            raise UserError(f"--dataset: {file} is empty.")
    try:
        return datasets.load_dataset(builder, data_files=files)
    except Exception as error:
        cause = error.__cause__ or error
        raise UserError(
            f"--dataset: could not read {', '.join(files.values())} as {builder} "
            f"({cause.__class__.__name__}: {str(cause).splitlines()[0][:200] if str(cause) else ''})."
        ) from None


def _read_zip(path: Path, columns: tuple[str, str]) -> tuple[pd.DataFrame, str]:
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


def _read_table(path: Path, raw: bytes, tab_separated: bool, columns: tuple[str, str]) -> pd.DataFrame:
    """Read a csv/tsv the way pandas does (quotes honoured).

    A csv has a header row. A tab-separated file has one when its first row names `columns`
    (text and label); otherwise a two-column one is read as (label, text), the layout of the
    SMS Spam Collection.
    """
    if not raw.strip():
        raise UserError(f"--dataset: {path} is empty.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"--dataset: {path} is not UTF-8 (byte {error.start}, line {line}); convert it to UTF-8 first."
        ) from None
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep="\t" if tab_separated else ",", header=None, dtype=str, keep_default_na=False
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"--dataset: could not parse {path} ({str(error).strip()[:200]}).") from None
    first_row = [str(value).strip() for value in frame.iloc[0]]
    if tab_separated and frame.shape[1] == 2 and not set(columns) <= set(first_row):
        frame.columns = ["label", "text"]
        return frame
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = first_row
    return frame


def _to_dataset(frame: pd.DataFrame) -> datasets.Dataset:
    return datasets.Dataset.from_pandas(frame.astype(object), preserve_index=False)
