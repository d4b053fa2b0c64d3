"""Values the parsers accept but that would fail later or train nothing, refused before anything loads."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hf_finetune.core.errors import UserError

if TYPE_CHECKING:  # imports torch: not for --help
    from transformers import TrainingArguments

# The largest count a flag may hold: torch, numpy and itertools take nothing larger.
MAX_COUNT = 2**63 - 1


def finite_float(text: str) -> float:
    """A float flag's value: a number, not NaN or infinite (which pass every comparison check and
    then fail inside the optimizer or the step count)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def bounded_int(text: str) -> int:
    """An int flag's value, at most MAX_COUNT in size."""
    value = int(text)
    if abs(value) > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text} is too large (at most 2**63 - 1)")
    return value


finite_float.__name__, bounded_int.__name__ = "float", "int"  # argparse says "invalid float value: 'x'"


def check_training_values(args: TrainingArguments) -> None:
    """Values TrainingArguments accepts but that fail later (optimizer, DataLoader, a division by
    zero, numpy's seed) or train nothing, refused before anything loads."""
    problems = [
        (args.learning_rate < 0, "--learning_rate", "must not be negative"),
        (args.weight_decay < 0, "--weight_decay", "must not be negative"),
        (not 0 <= args.adam_beta1 < 1, "--adam_beta1", "must be at least 0 and below 1"),
        (not 0 <= args.adam_beta2 < 1, "--adam_beta2", "must be at least 0 and below 1"),
        (args.adam_epsilon < 0, "--adam_epsilon", "must not be negative"),
        (not 0 <= args.label_smoothing_factor < 1, "--label_smoothing_factor", "must be at least 0 and below 1"),
        (args.per_device_train_batch_size < 1, "--per_device_train_batch_size", "must be 1 or more"),
        (args.per_device_eval_batch_size < 1, "--per_device_eval_batch_size", "must be 1 or more"),
        (args.gradient_accumulation_steps < 1, "--gradient_accumulation_steps", "must be 1 or more"),
        (
            args.eval_accumulation_steps is not None and args.eval_accumulation_steps < 1,
            "--eval_accumulation_steps",
            "must be 1 or more (or unset)",
        ),
        (args.dataloader_num_workers < 0, "--dataloader_num_workers", "must not be negative"),
        # Trainer keeps every checkpoint for 0 or less, as for no limit: a user asking for none would keep all.
        (args.save_total_limit is not None and args.save_total_limit < 1, "--save_total_limit",
         "must be 1 or more (or unset to keep every checkpoint; --save_strategy no saves none)"),
        # Seconds a process waits in a collective for the others (run/machines.py): 0 fails the first one;
        # beyond about 31 years, the backends' millisecond counts and timedelta overflow.
        (not 1 <= args.ddp_timeout <= 10**9, "--ddp_timeout", "must be between 1 and 10**9 seconds"),
        (not 0 <= args.seed < 2**32, "--seed", "must be between 0 and 2**32 - 1"),
        (
            args.data_seed is not None and not 0 <= args.data_seed < 2**32,
            "--data_seed",
            "must be between 0 and 2**32 - 1",
        ),
        (
            args.max_steps == 0 or args.max_steps < -1,
            "--max_steps",
            "must be 1 or more, or -1 to train --num_train_epochs",
        ),
        (
            args.max_steps == -1 and args.num_train_epochs <= 0,
            "--num_train_epochs",
            "must be above 0 (or set --max_steps), or the run trains nothing",
        ),
    ]
    for strategy, steps, flag in (
        (args.eval_strategy, args.eval_steps, "--eval_steps"),
        (args.save_strategy, args.save_steps, "--save_steps"),
        (args.logging_strategy, args.logging_steps, "--logging_steps"),
    ):
        used = strategy == "steps"
        problems.append(
            (used and steps is not None and steps <= 0, flag, f"must be above 0 with {flag[:-6]}_strategy steps")
        )
    for wrong, flag, rule in problems:
        if wrong:
            raise UserError(f"{flag}: {getattr(args, flag[2:])} {rule}.")


def check_writable_folder(folder: Path, flag: str) -> None:
    """`folder`, or the nearest folder above it that exists (where it will be created), must be a
    folder this process can create files in. Tried by creating and removing an empty file: file
    modes alone do not tell (root ignores them; a read-only mount or /proc refuses anyway)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = f"{folder} is a file" if existing == folder else f"{existing}, above {folder}, is a file"
        raise UserError(f"{flag}: {where}, not a folder; choose a folder path.")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UserError(
            f"{flag}: cannot create files in {existing} ({error.strerror}); choose a folder you can write to."
        ) from None
