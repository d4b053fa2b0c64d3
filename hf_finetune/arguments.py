"""Command-line arguments shared by every entry point.

Precedence, lowest first: the recipe's defaults, `--config FILE.yaml`, the command line.
Every `transformers.TrainingArguments` field is a flag too (`--learning_rate`, `--bf16`, ...).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .errors import UserError


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
class DataArguments:
    dataset: str = field(
        default="sms_spam",
        metadata={
            "help": "A registered name (sms_spam, rotten_tomatoes), a Hub dataset id, a local file "
            "(zip, tsv, csv, json, jsonl, parquet), a folder of split files, or a save_to_disk folder."
        },
    )
    dataset_url: str | None = field(
        default=None, metadata={"help": "Download a registered dataset from this URL instead of its usual one."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label."})
    class_names: str | None = field(
        default=None,
        metadata={"help": "Comma-separated class names in id order, e.g. 'ham,spam'. Default: from the data."},
    )
    balance: bool = field(
        default=False, metadata={"help": "Undersample every class to the size of the smallest (seeded)."}
    )
    split: str = field(
        default="0.7,0.1,0.2",
        metadata={"help": "train,validation,test fractions for data that comes as one split (seeded shuffle)."},
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (default: the model's context)."}
    )
    train_eval_samples: int = field(
        default=256,
        metadata={"help": "Training examples scored at each evaluation point (for the train accuracy curve)."},
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where downloads are cached (default: ~/.cache/hf_finetune)."}
    )


@dataclass
class RunArguments:
    config: str | None = field(default=None, metadata={"help": "YAML file of flags; the command line wins."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow replacing the results of a finished run in --output_dir."}
    )
    skip_nonfinite_batches: bool = field(
        default=False,
        metadata={"help": "Skip (and log) batches whose loss or gradients are NaN/inf instead of stopping."},
    )
    # Not --debug: TrainingArguments owns that flag (for its own underflow/overflow debugging).
    traceback: bool = field(default=False, metadata={"help": "Show the full traceback of an error."})


def _yaml_as_argv(path: str, known: set[str]) -> list[str]:
    """Turn a YAML mapping into command-line tokens, so it is typed exactly like the CLI."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--config: file {path} does not exist.")
    try:
        content = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"--config: {path} is not valid YAML ({error.__class__.__name__}).") from None
    if content is None:
        return []
    if not isinstance(content, dict):
        raise UserError(f"--config: {path} must be a mapping of flag names to values.")
    tokens: list[str] = []
    for key, value in content.items():
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
    return tokens


def _config_path(argv: Sequence[str]) -> str | None:
    for index, token in enumerate(argv):
        if token == "--config":
            if index + 1 >= len(argv):
                raise UserError("--config needs a file name.")
            return argv[index + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return None


def accelerator_available() -> bool:
    import torch

    return (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or torch.backends.mps.is_available()
    )


def use_cpu_processes_without_accelerator(parser: HfArgumentParser) -> None:
    """On a machine without GPU, run as CPU workers: `--use_cpu` by default.

    TrainingArguments refuses `--bf16` unless `use_cpu` is on, and processes started by
    `accelerate launch --multi_gpu` / `torchrun` only train together (DDP over gloo) when
    accelerate is told they are CPU workers; otherwise each trains alone on the whole data and
    all of them write the same run folder. Must run before TrainingArguments is built.
    """
    if accelerator_available():
        return
    if "use_cpu" in {action.dest for action in parser._actions}:
        parser.set_defaults(use_cpu=True)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def parse_arguments(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
) -> tuple:
    """Parse `argv` into instances of `dataclass_types` (recipe defaults < YAML < CLI)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(list(dataclass_types), description=description)
    known = {action.dest for action in parser._actions}
    if defaults:
        unknown = set(defaults) - known
        if unknown:
            raise ValueError(f"recipe defaults name unknown flags: {sorted(unknown)}")
        parser.set_defaults(**defaults)
    config = _config_path(argv)
    prefix = _yaml_as_argv(config, known) if config else []
    use_cpu_processes_without_accelerator(parser)
    try:
        return parser.parse_args_into_dataclasses(args=prefix + argv)
    except ValueError as error:  # TrainingArguments validates flag combinations in __post_init__
        message = str(error).strip().splitlines()[0]
        if message.startswith("Some specified arguments are not used"):
            unknown = [token for token in prefix + argv if token.startswith("--") and token in message]
            raise UserError(f"unknown flag(s): {', '.join(unknown) or message}; see --help.") from None
        raise UserError(f"conflicting or invalid flags: {message}") from None


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
        snapshot.update({k: v for k, v in values.items() if not _is_secret(k) and k != "config"})
    return snapshot


CLASSIFICATION_ARGUMENTS = (ModelArguments, DataArguments, RunArguments, TrainingArguments)
