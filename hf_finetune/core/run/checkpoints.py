"""Which checkpoints a run can resume from, and a disk that fills up while one is written.

Trainer (transformers 5.24, `_save_checkpoint`) writes a checkpoint in place, in this order:
the model (safetensors writes a temporary file and renames it), optimizer, scheduler and RNG
state (torch.save, written in place), then trainer_state.json, then it rotates older
checkpoints. So trainer_state.json is the file written last: a save cut short by a kill or a full
disk leaves a folder without it, or with it truncated. A checkpoint counts as complete when
trainer_state.json parses and every weight and state file in it is whole; otherwise resuming
skips it, naming why. Nothing is staged or renamed, so rotation (save_total_limit), the best
model's folder and saves in which every process writes its part keep working as Trainer has them.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints

TRAINER_STATE = "trainer_state.json"
# Model weights: a whole model or adapter, or the folders FSDP (sharded state) and DeepSpeed write.
WEIGHT_FILES = ("*.safetensors", "*model*.bin", "pytorch_model_fsdp_*", "global_step*")
TORCH_FILES = ("*.pt", "*.pth", "*.bin")  # torch.save writes zip archives: their directory comes last


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from, or None when it is a complete checkpoint."""
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE}: its save was cut off"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{TRAINER_STATE} is truncated"
    if not any(file for pattern in WEIGHT_FILES for file in folder.glob(pattern)):
        return "it holds no model weights"
    if not any(folder.glob("rng_state*.pth")):  # without it the resumed run draws other batches and dropout
        return "its random state (rng_state.pth) is missing"
    for index in folder.glob("*.safetensors.index.json"):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, UnicodeDecodeError):
            return f"{index.name} is truncated"
        if missing := sorted(shard for shard in shards if not (folder / shard).is_file()):
            return f"{missing[0]} is missing"
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(file, framework="pt"):
                pass
        except (SafetensorError, OSError):
            return f"{file.name} is truncated"
    for file in sorted({file for pattern in TORCH_FILES for file in folder.glob(pattern)}):
        if not zipfile.is_zipfile(file):
            return f"{file.name} is truncated"
    return None


def newest_complete_checkpoint(output_dir: str | Path) -> tuple[str | None, list[str]]:
    """The newest complete checkpoint in `output_dir` (by step), and why each newer one was skipped."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None, []
    skipped = []
    for checkpoint in reversed(sort_checkpoints(str(folder))):
        problem = checkpoint_problem(Path(checkpoint))
        if problem is None:
            return checkpoint, skipped
        skipped.append(f"{Path(checkpoint).name} ({problem})")
    return None, skipped


def remove_unfinished_checkpoint(output_dir: str | Path, step: int) -> str | None:
    """Remove checkpoint-`step` if its save did not finish; returns its name when it did so."""
    checkpoint = Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
    if checkpoint.is_dir() and checkpoint_problem(checkpoint) is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
        return checkpoint.name
    return None


WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "a file grew past the file size limit",
}
# safetensors (Rust) and torch.save (C++) drop the OSError: safetensors keeps the errno in its
# message, torch keeps nothing but the fact that its stream writer failed.
OS_ERROR_IN_MESSAGE = re.compile(r"\(os error (\d+)\)")
TORCH_WRITE_FAILURE = re.compile(r"PytorchStreamWriter failed|inline_container\.cc|file write failed")
LOW_FREE_SPACE = 64 * 2**20


def write_failure(error: BaseException, folder: str | Path) -> str | None:
    """The cause, in words, when `error` is a write that failed for lack of space; None otherwise."""
    if isinstance(error, OSError):
        return WRITE_FAILURES.get(error.errno)
    if isinstance(error, SafetensorError) and (found := OS_ERROR_IN_MESSAGE.search(str(error))):
        return WRITE_FAILURES.get(int(found.group(1)))
    if isinstance(error, RuntimeError) and TORCH_WRITE_FAILURE.search(str(error)):
        # No errno to read: call it a full disk only when the disk really is (nearly) full.
        try:
            free = shutil.disk_usage(Path(folder)).free
        except OSError:
            return None
        return WRITE_FAILURES[errno.ENOSPC] if free < LOW_FREE_SPACE else None
    return None
