"""Command-line arguments shared by every method, and how a run reads them.

Precedence, lowest first: the recipe's defaults, `--config FILE.yaml` (a finished run's
config.yaml is such a file), the command line. Every `transformers.TrainingArguments` field is
a flag too (`--learning_rate`, `--bf16`, ...). HfArgumentParser reads the flags; the YAML file
is turned into command-line tokens first rather than handed to TRL's `TrlParser`, which sets
YAML values as untyped defaults (a null replaces a default, `15` stays an int in a float
field, `4` in a text field, a list lands in a one-value field).

`--help` shows the command's own flags first, then the common ones in sections (data, model,
training, LoRA, hub, logging) with the defaults the command really uses; of the ~115
TrainingArguments flags it shows the common ones and `--help-all` all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from hf_finetune.methods.classify.calibration import CalibrationArguments
from hf_finetune.methods.classify.data import DataArguments
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.lora import LoraArguments

HELP_EPILOG = (
    "A switch alone turns it on (--bf16); --bf16 false turns it off.\n"
    "--config FILE.yaml reads flags from a YAML mapping (flag name: value); the command line wins.\n"
    "Every TrainingArguments field is a flag; --help-all lists them all."
)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="gpt2",
        metadata={"help": "Hub id or local folder of a causal LM (GPT-2, Bloom, Llama, ...)."},
    )
    trainable: str = field(
        default="last_block",
        metadata={
            "help": "What trains: last_block (last block, final norm, head), head, last_blocks:N or all."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Let model code from the Hub run."}
    )


@dataclass
class RunArguments:
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a finished run in --output_dir."}
    )
    skip_nonfinite_batches: bool = field(
        default=False,
        metadata={"help": "Skip and log a NaN/inf batch instead of stopping."},
    )
    cache_frozen: bool = field(
        default=True,
        metadata={"help": "Frozen layers run once per text (no dropout)."},
    )
    cache_frozen_dtype: str = field(
        default="auto",
        metadata={"help": "dtype of the frozen layers' cached output: auto (the training precision), float32, "
                  "bfloat16 or float16."},  # fmt: skip
    )
    cache_frozen_max_gb: float | None = field(
        default=None,
        metadata={"help": "Most gigabytes the cache may take per process (default: half the free memory, shared "
                  "between the processes); a larger cache is not built and training runs the whole model."},  # fmt: skip
    )
    seeds: str | None = field(
        default=None,
        metadata={"help": "Runs per seed, e.g. 1,2,3: OUTPUT_DIR/seed-N/ and a summary.md."},
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


@dataclass(frozen=True)
class _CommandHelp:
    prog: str | None = None
    description: str | None = None


_command_help: ContextVar[_CommandHelp | None] = ContextVar("command_help", default=None)


@contextmanager
def command_help(prog: str | None = None, description: str | None = None) -> Iterator[None]:
    """Inside this block, --help names the command `prog` (`hf-finetune spam`) and opens with
    `description` (a recipe's story) instead of the script's file name and the method's docstring."""
    current = _command_help.get() or _CommandHelp()
    token = _command_help.set(_CommandHelp(prog or current.prog, description or current.description))
    try:
        yield
    finally:
        _command_help.reset(token)


def command_prog(default: str | None = None) -> str | None:
    """The command's name for its usage line: as `hf-finetune` called it, else `default`."""
    return (_command_help.get() or _CommandHelp()).prog or default


def _module_prog() -> str | None:
    """`python -m hf_finetune.classify` for a module of this package run with -m, not argparse's
    `classify.py`; None (argparse's file name) for a script such as recipes/spam.py."""
    script = Path(sys.argv[0]).resolve()
    package = Path(__file__).resolve().parents[1]
    if script.suffix != ".py" or package not in script.parents:
        return None
    return "python -m " + ".".join(script.relative_to(package.parent).with_suffix("").parts)


VALUE_NAMES = {int: "INT", float: "FLOAT", string_to_bool: "BOOL", Path: "PATH"}


def _is_dash_alias(flag: str, flags: Sequence[str]) -> bool:
    """--learning-rate, the alias HfArgumentParser adds beside --learning_rate."""
    return flag.startswith("--") and "-" in flag[2:] and f"--{flag[2:].replace('-', '_')}" in flags


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples keep their line breaks; each flag shows once (not also as its --dash-form alias),
    with the kind of value it takes and its default. A switch (`--bf16`, `--bf16 false`) shows a
    default only when it is on."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        flags = ", ".join(flag for flag in action.option_strings if not _is_dash_alias(flag, action.option_strings))
        if action.nargs == 0 or _is_switch(action):
            return flags
        return f"{flags} {self._format_args(action, self._get_default_metavar_for_optional(action))}"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return VALUE_NAMES.get(action.type, "TEXT")

    def _get_help_string(self, action: argparse.Action) -> str:
        # argparse %-formats help texts: a lone % (a chat template's `{% generation %}`) is doubled;
        # `%%` (transformers writes `~20%%`) and `%(default)s` already are format codes.
        text = re.sub(r"%(%|\()?", lambda match: match[0] if match[1] else "%%", action.help or "")
        default = action.default
        if action.nargs == 0 or "%(default)" in text or default in (None, "", argparse.SUPPRESS) or default is False:
            return text
        # A default with a line break (the chat's "\n\n### Human:") shows as Python writes it.
        shown = "%(default)r" if isinstance(default, str) and default != default.strip() else "%(default)s"
        return f"{text} (default: {shown})"


def _is_switch(action: argparse.Action) -> bool:
    """A dataclass bool: `--flag` alone means true, `--flag false` also works."""
    return action.nargs == "?" and action.type is string_to_bool


class ToolParser(argparse.ArgumentParser):
    """The small tools' parser: defaults shown, `--help-all` accepted like `--help`, and argparse's
    own mistakes (a missing argument, a bad number) as one sentence, not usage + exit."""

    def __init__(self, prog: str, description: str | None = None):
        super().__init__(prog=command_prog(prog), description=description, formatter_class=HelpFormatter,
                         add_help=False)  # fmt: skip
        self.add_argument("-h", "--help", "--help-all", action="help", help="show this help and exit")

    def error(self, message: str):
        # "argument --max_new_tokens: invalid int value: 'x'" -> "--max_new_tokens: invalid int value: 'x'"
        raise UserError(f"{re.sub(r'^argument ', '', message)}; see --help.")


# Help sections, in the order --help shows them after the command's own flags.
SECTIONS = ("data", "model", "training", "LoRA", "hub", "logging")
MORE_TRAINING_FLAGS = "more training flags (TrainingArguments)"
COMMON_ARGUMENTS = {DataArguments: "data", ModelArguments: "model", RunArguments: "training", LoraArguments: "LoRA",
                    CalibrationArguments: "training"}  # fmt: skip

# The TrainingArguments flags --help shows, each with a short help of ours; --help-all shows every one.
TRAINING_FLAGS = {
    "train_sampling_strategy": ("data", "random, sequential or group_by_length (similar lengths)."),
    "dataloader_num_workers": ("data", "Processes loading batches (0: the main one)."),
    "output_dir": ("training", "The run's folder: model, report, checkpoints."),
    "num_train_epochs": ("training", "Passes over the training data."),
    "max_steps": ("training", "Optimizer steps to train instead (-1: see --num_train_epochs)."),
    "learning_rate": ("training", "Peak learning rate (AdamW)."),
    "lr_scheduler_type": ("training", "linear, cosine, constant, constant_with_warmup, polynomial, inverse_sqrt, ..."),
    "warmup_steps": ("training", "Linear warm-up steps (below 1: a fraction of all steps)."),
    "weight_decay": ("training", "AdamW weight decay (not on biases and norms)."),
    "per_device_train_batch_size": ("training", "Training examples per batch and device."),
    "per_device_eval_batch_size": ("training", "Evaluation examples per batch and device."),
    "gradient_accumulation_steps": ("training", "Batches per optimizer step."),
    "seed": ("training", "Seed of initialisation, shuffling and splits."),
    "bf16": ("training", "bfloat16 mixed precision (recent GPUs, CPUs with native bf16)."),
    "fp16": ("training", "float16 mixed precision (GPU)."),
    "activation_checkpointing": ("training", "Less memory, slower steps (also --gradient_checkpointing)."),
    "eval_strategy": ("training", "When to evaluate: no, steps or epoch."),
    "eval_steps": ("training", "Steps between evaluations with --eval_strategy steps."),
    "save_strategy": ("training", "When to save a checkpoint."),
    "save_steps": ("training", "Steps between checkpoints with --save_strategy steps."),
    "save_total_limit": ("training", "Checkpoints kept; older ones are deleted."),
    "resume_from_checkpoint": ("training", "auto (the newest complete one in --output_dir) or a checkpoint."),
    "push_to_hub": ("hub", "Publish the finished run on the Hugging Face Hub."),
    "hub_model_id": ("hub", "The repository: USER/NAME."),
    "hub_private_repo": ("hub", "Create the repository private."),
    "hub_token": ("hub", "Token (default: HF_TOKEN); kept out of the run's files."),
    "logging_steps": ("logging", "Steps between training-loss log lines."),
    "report_to": ("logging", "Trackers: none, tensorboard, wandb, trackio, ... or all."),
}
RARE_FLAGS = {"cache_frozen_dtype", "cache_frozen_max_gb"}  # ours, listed by --help-all only
FLAG_SECTIONS = {"traceback": "logging"}  # RunArguments' flag that is not about training


def _own_section(dataclass_type: type) -> str:
    """The section of a method's own flags: 'chat method' for hf_finetune.methods.chat.arguments."""
    parts = dataclass_type.__module__.split(".")
    if parts[:2] == ["hf_finetune", "methods"] and len(parts) > 2:
        return f"{parts[-2].replace('_', '-')} method"
    return "command"


def _section(dataclass_type: type, name: str) -> str:
    if issubclass(dataclass_type, TrainingArguments):
        return TRAINING_FLAGS[name][0] if name in TRAINING_FLAGS else MORE_TRAINING_FLAGS
    if dataclass_type in COMMON_ARGUMENTS:
        return FLAG_SECTIONS.get(name, COMMON_ARGUMENTS[dataclass_type])
    return _own_section(dataclass_type)


class _ShowEveryFlag(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.show_every_flag()
        parser.print_help()
        parser.exit()


class _Parser(HfArgumentParser):
    """The dataclasses' flags in help sections, and argparse's own mistakes (a bad number, a bad
    choice) as one sentence, not usage + exit."""

    def __init__(self, dataclass_types: Sequence[type], **kwargs):
        super().__init__(list(dataclass_types), formatter_class=HelpFormatter, usage="%(prog)s [--flag VALUE ...]",
                         epilog=HELP_EPILOG, **kwargs)  # fmt: skip
        self.add_argument("--help-all", action=_ShowEveryFlag, help="show every flag and exit")
        self._hidden_help: dict[argparse.Action, str | None] = {}
        self._arrange_in_sections()

    def _arrange_in_sections(self) -> None:
        """HfArgumentParser puts a dataclass's flags in one group (`_argument_group_name`), but
        TrainingArguments' flags belong to several sections: each flag moves to its own."""
        owners = {item.name: dtype for dtype in self.dataclass_types for item in fields(dtype)}
        own = [_own_section(dtype) for dtype in self.dataclass_types
               if dtype not in COMMON_ARGUMENTS and not issubclass(dtype, TrainingArguments)]  # fmt: skip
        titles = dict.fromkeys([*own, *SECTIONS, MORE_TRAINING_FLAGS])  # in the order --help shows them
        sections = {title: self.add_argument_group(title) for title in titles}
        position = {name: index for index, name in enumerate(TRAINING_FLAGS)}
        flags = [action for action in self._optionals._group_actions if action.dest in owners]  # not --help
        # The dataclasses' flags in their order, the curated TrainingArguments in TRAINING_FLAGS' order.
        for action in sorted(flags, key=lambda action: position.get(action.dest, -1)):
            title = _section(owners[action.dest], action.dest)
            self._optionals._group_actions.remove(action)
            sections[title]._group_actions.append(action)
            if action.dest in TRAINING_FLAGS:
                action.help = TRAINING_FLAGS[action.dest][1]
            if action.choices is not None and len(action.choices) > 3:
                action.metavar = "NAME"  # not the 41 optimizers; the help names the common ones
            # Hidden from --help (they all still work): the rarer TrainingArguments and flags of ours, and
            # the --no_X forms of flags that default to true (--X false says the same).
            if title == MORE_TRAINING_FLAGS or action.dest in RARE_FLAGS or action.option_strings[0] == f"--no_{action.dest}":
                self._hidden_help[action] = action.help
                action.help = argparse.SUPPRESS

    def show_every_flag(self) -> None:
        for action, help_text in self._hidden_help.items():
            action.help = help_text

    def error(self, message: str):
        # "argument --learning_rate/--learning-rate: invalid float value: 'abc'" -> "--learning_rate: ..."
        message = re.sub(r"^argument (--[\w.]+)(/--[\w.-]+)*", r"\1", message)
        raise UserError(f"{message.rstrip('.')}; see --help.")


def parse_arguments(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
) -> tuple:
    """Parse `argv` into instances of `dataclass_types` (recipe defaults < YAML < CLI)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_help.get() or _CommandHelp()
    prog, description = command.prog or _module_prog(), command.description or description
    parser = _Parser(dataclass_types, prog=prog, description=description)
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
