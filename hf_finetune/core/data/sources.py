"""Sources: a name, Hub id, URL, file or folder becomes a `datasets.DatasetDict`.

Whatever the source, the result has the columns the user's data has; the method's data module (the next
layer) checks and renames them. `label_names` travel with the data when the source knows them
(a registered dataset, or a `ClassLabel` feature).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets

from hf_finetune.core.data.download import fetch, hub_unreachable, offline_way_out
from hf_finetune.core.data.files import FILE_FORMATS, load_files, read_table, read_zip, to_dataset
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
        table, member = read_zip(path, columns)
        return SourceData(
            splits=datasets.DatasetDict(train=to_dataset(table.frame)),
            origin=f"{path} (member {member})",
            files={"train": f"{path}:{member}"},
            lines={"train": table.lines},
        )
    if suffix in (".json", ".jsonl", ".parquet"):
        files = {"train": str(path)}
        splits, lines = load_files(FILE_FORMATS[suffix], files)
        return SourceData(splits=splits, origin=str(path), files=files, lines=lines)
    table = read_table(path, path.read_bytes(), suffix != ".csv", columns)
    return SourceData(
        splits=datasets.DatasetDict(train=to_dataset(table.frame)),
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
            split: read_table(file, file.read_bytes(), file.suffix.lower() == ".tsv", columns)
            for split, file in found.items()
        }
        splits = datasets.DatasetDict({split: to_dataset(table.frame) for split, table in tables.items()})
        lines = {split: table.lines for split, table in tables.items()}
    else:
        splits, lines = load_files(formats.pop(), files)
    return SourceData(splits=splits, origin=f"folder {folder}", files=files, lines=lines)
