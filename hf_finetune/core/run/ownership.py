"""Who owns a folder, so that no command writes into a folder another command or series owns.

A folder is owned by the first of these that holds it:
- a series (--seeds, or the chat method's --compare): its folder holds `_series.json` (older
  series: summary.json, or a config.yaml with `seeds`, or a chat all_results.json with several
  methods), and each folder in it belongs to it (seed-N/, one folder per loss method);
- `hf-finetune compare --output`: compare.json;
- a run: all_results.json (finished), or the traces of one begun (config.yaml, checkpoints, the lock);
  every folder inside a run's (its checkpoints) belongs to that run;
- a model saved outside a run (config.json and weights, no run's traces): nobody's to write into.

A training run writes only into a folder that is empty, its own unfinished run, or (with
--overwrite_output_dir) a finished run; a series only into its own folder; compare only into a
folder no run or series owns. Results files count as finished only when they parse as they should.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json

# A finished run's flags, and a --seeds series' summary of its runs.
CONFIG = "config.yaml"
SUMMARY = "summary.json"

SERIES_MARKER = "_series.json"  # "_": Trainer's push to the Hub leaves it out, as the lock
COMPARE_MARKER = "compare.json"
# What a run leaves in its folder from its start (the lock, kept by a killed run), its first checkpoint, its save.
RUN_TRACES = ("_run.lock", "trainer_state.json", "model.safetensors", "adapter_model.safetensors")
SERIES_KINDS = {"seeds": "a --seeds series", "chat --compare": "a chat --compare series"}


WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class Owner:
    kind: str  # "series", "series run", "compare", "run", "inside run", "model"
    folder: Path  # the owner's folder (a series run's: its series'; inside a run: that run's)
    series_kind: str | None = None  # "seeds" or "chat --compare"

    def describe(self) -> str:
        if self.kind == "series":
            return f"{SERIES_KINDS[self.series_kind]} (its runs are the folders in it)"
        if self.kind == "series run":
            return f"a run of {SERIES_KINDS[self.series_kind]} in {self.folder}"
        if self.kind == "compare":
            return f"the output of hf-finetune compare ({COMPARE_MARKER})"
        if self.kind == "inside run":
            return f"inside {self.folder}, the folder of a run or a model"
        if self.kind == "model":
            return "a saved model, not a run"
        return f"a finished run ({FINISHED_MARKER})"


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing, cut off, not UTF-8 or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def series_kind(folder: Path) -> str | None:
    """"seeds" or "chat --compare" when `folder` is a series' folder, else None."""
    marker = read_json_object(folder / SERIES_MARKER)
    if marker is not None and marker.get("kind") in SERIES_KINDS:
        return marker["kind"]
    if (folder / "summary.json").is_file():
        return "seeds"
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        config = None
    if isinstance(config, dict) and config.get("seeds"):
        return "seeds"
    results = read_json_object(folder / FINISHED_MARKER)
    if results is not None and isinstance(results.get("methods"), list) and len(results["methods"]) > 1:
        return "chat --compare"
    return None


def folder_owner(folder: str | Path) -> Owner | None:
    """Who owns `folder` (see the module's docstring); None: an empty folder or an unfinished run's."""
    folder = Path(folder).absolute()
    kind = series_kind(folder.parent)
    if kind is not None:
        return Owner("series run", folder.parent, kind) if folder.is_dir() else None
    above = run_folder_above(folder.parent)
    if above is not None and not series_kind(above):  # a checkpoint, or a folder a run's files would mix with
        return Owner("inside run", above)
    if not folder.is_dir():
        return None
    kind = series_kind(folder)
    if kind is not None:
        return Owner("series", folder, kind)
    if (folder / COMPARE_MARKER).is_file() and not (folder / FINISHED_MARKER).exists():
        return Owner("compare", folder)
    if (folder / FINISHED_MARKER).exists():
        return Owner("run", folder)
    if is_saved_model(folder):
        return Owner("model", folder)
    return None


def is_saved_model(folder: Path) -> bool:
    """A model saved outside a run (save_pretrained, hf-finetune tiny): config.json and weights, and
    none of the files a run writes besides them."""
    run_files = ("config.yaml", "trainer_state.json", FINISHED_MARKER)  # not the lock: the run asking holds it
    return (folder / "config.json").is_file() and any((folder / name).exists() for name in WEIGHTS) \
        and not any((folder / name).exists() for name in run_files)  # fmt: skip


def run_folder_above(folder: str | Path) -> Path | None:
    """The nearest folder at or above `folder` that a run or series has written into (None: none):
    where compare --output must not write."""
    folder = Path(folder).absolute()
    for candidate in (folder, *folder.parents):
        if not candidate.is_dir():
            continue
        traces = [FINISHED_MARKER, *RUN_TRACES]
        if series_kind(candidate) or any((candidate / name).exists() for name in traces) or \
                any(candidate.glob("checkpoint-*")):  # fmt: skip
            return candidate
    return None


def mark_series(folder: str | Path, kind: str, runs: list[str]) -> None:
    """Mark `folder` as a series' (its main process, once the folder is locked)."""
    atomic_write_json(Path(folder) / SERIES_MARKER, {"kind": kind, "runs": runs})
