"""Command-line arguments shared by every method, and how a run reads them.

Precedence, lowest first: the recipe's defaults, `--config FILE.yaml` (a finished run's
config.yaml is such a file), the command line. Every `transformers.TrainingArguments` field is
a flag too (`--learning_rate`, `--bf16`, ...). HfArgumentParser reads the flags; the YAML file
is turned into command-line tokens first rather than handed to TRL's `TrlParser`, which sets
YAML values as untyped defaults (a null replaces a default, `15` stays an int in a float
field, `4` in a text field, a list lands in a one-value field).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .errors import UserError

CONFIG_HELP = "--config FILE.yaml reads flags from a YAML mapping (flag name: value); the command line wins."


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="gpt2",
        metadata={"help": "Hub id or local folder of a causal LM (GPT-2, Bloom, Llama, ...)."},
    )
    trainable: str = field(
        default="last_block",
        metadata={
            "help": "Which parameters train: 'last_block' (last transformer block + final norm + head), "
            "'head', 'last_blocks:N', or 'all'."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model code from the Hub to run (off unless you pass it)."}
    )


@dataclass
class RunArguments:
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow replacing the results of a finished run in --output_dir."}
    )
    skip_nonfinite_batches: bool = field(
        default=False,
        metadata={"help": "Skip (and log) batches whose loss or gradients are NaN/inf instead of stopping."},
    )
    # Not --debug: TrainingArguments owns that flag (for its own underflow/overflow debugging).
    traceback: bool = field(default=False, metadata={"help": "Show the full traceback of an error."})


def config_file_argv(argv: list[str], known: set[str]) -> tuple[list[str], dict[str, str]]:
    """`argv` with its `--config FILE.yaml` replaced by the file's flags, placed first so that the
    command line wins. Each value becomes command-line tokens, so it is typed and checked exactly
    as if typed there (a null keeps the default). Also returns the flags only the file sets, each
    with the file's name, so that a message about one of them can say where it was set."""
    argv = [part for token in argv for part in (token.split("=", 1) if token.startswith("--config=") else [token])]
    if "--config" not in argv:
        return argv, {}
    index = argv.index("--config")
    if index + 1 >= len(argv):
        raise UserError("--config needs a file name.")
    path = argv[index + 1]
    if not Path(path).is_file():
        raise UserError(f"--config: file {path} does not exist.")
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"--config: {path} is not UTF-8 text (byte {error.start}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # counts lines from 0
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or error.__class__.__name__
        raise UserError(f"--config: {path}{where} is not valid YAML ({problem}).") from None
    if content is not None and not isinstance(content, dict):
        raise UserError(f"--config: {path} must be a mapping of flag names to values.")
    tokens: list[str] = []
    for key, value in (content or {}).items():
        if key not in known:
            raise UserError(f"--config: {path} has an unknown key '{key}'.")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            tokens += [f"--{key}", *[str(item) for item in value]]
        elif isinstance(value, dict):
            tokens += [f"--{key}", json.dumps(value)]
        else:
            tokens += [f"--{key}", str(value)]
    command_line = argv[:index] + argv[index + 2 :]
    typed = {token.split("=", 1)[0] for token in command_line}
    from_file = {token: path for token in tokens if token.startswith("--") and token not in typed}
    return tokens + command_line, from_file


def accelerator_available() -> bool:
    import torch

    return (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or torch.backends.mps.is_available()
    )


def cpu_processes_without_accelerator() -> dict[str, Any]:
    """On a machine without GPU, run as CPU workers: `--use_cpu` by default.

    TrainingArguments refuses `--bf16` unless `use_cpu` is on, and processes started by
    `accelerate launch --multi_gpu` / `torchrun` only train together (DDP over gloo) when
    accelerate is told they are CPU workers; otherwise each trains alone on the whole data and
    all of them write the same run folder. Must run before TrainingArguments is built.
    """
    if accelerator_available():
        return {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return {"use_cpu": True}


class _Parser(HfArgumentParser):
    """argparse's own mistakes (a bad number, a bad choice) as one sentence, not usage + exit."""

    def error(self, message: str):
        # "argument --learning_rate/--learning-rate: invalid float value: 'abc'" -> "--learning_rate: ..."
        message = re.sub(r"^argument (--[\w.]+)(/--[\w.-]+)*", r"\1", message)
        raise UserError(f"{message}; see --help.")


def parse_arguments(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
) -> tuple:
    """Parse `argv` into instances of `dataclass_types` (recipe defaults < YAML < CLI)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _Parser(list(dataclass_types), description=f"{description or ''}\n\n{CONFIG_HELP}".strip())
    known = {item.name for dataclass_type in dataclass_types for item in fields(dataclass_type)}
    defaults = dict(defaults or {})
    unknown = set(defaults) - known
    if unknown:
        raise ValueError(f"recipe defaults name unknown flags: {sorted(unknown)}")
    if TrainingArguments in dataclass_types:
        defaults = {**cpu_processes_without_accelerator(), **defaults}
    parser.set_defaults(**defaults)
    argv, from_file = config_file_argv(argv, known)
    try:
        try:
            parsed = parser.parse_args_into_dataclasses(args=argv)
        except ValueError as error:  # TrainingArguments validates flag combinations in __post_init__
            message = " ".join(str(error).split())
            if message.startswith("Some specified arguments are not used"):
                unknown = [token for token in argv if token.startswith("--") and token in message]
                raise UserError(f"unknown flag(s): {', '.join(unknown) or message}; see --help.") from None
            # Name the fields the user set as the flags they typed: "fp16 and bf16" -> "--fp16 and --bf16".
            for name in {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")} & known:
                message = re.sub(rf"(?<![-\w]){re.escape(name)}(?!\w)", f"--{name}", message)
            raise UserError(f"conflicting or invalid flags: {message.rstrip('.')}.") from None
        for item in parsed:
            if isinstance(item, TrainingArguments):
                check_training_values(item)
                check_writable_folder(Path(item.output_dir), "--output_dir")
    except UserError as error:
        flag = re.match(r"--\w+", str(error))
        if flag and flag[0] in from_file:
            raise UserError(f"{str(error).rstrip('.')} (set in --config {from_file[flag[0]]}).") from None
        raise
    return parsed


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


def training_args_as(config_class: type[TrainingArguments], args: TrainingArguments, **changes) -> TrainingArguments:
    """`args` as another TrainingArguments class (TRL's SFTConfig, ...) with exactly the user's
    values, not that class's own defaults; `changes` set its own fields or replace values."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init and not f.name.startswith("_")}
    return config_class(**{**values, **changes})


def _is_secret(key: str) -> bool:
    """hub_token and the like; not max_new_tokens or special_tokens."""
    return key == "token" or key.endswith("_token")


def config_snapshot(*arguments) -> dict:
    """A flat mapping of the run's flags, reusable with --config: every field of the project's
    argument dataclasses, and the TrainingArguments that differ from their defaults. Fields
    that hold secrets (tokens) are left out."""
    snapshot: dict[str, Any] = {}
    for item in arguments:
        if isinstance(item, TrainingArguments):
            reference = TrainingArguments(output_dir=item.output_dir).to_dict()
            values = {k: v for k, v in item.to_dict().items() if v != reference.get(k) and not k.startswith("_")}
        else:
            values = asdict(item)
        snapshot.update({k: v for k, v in values.items() if not _is_secret(k)})
    return snapshot
