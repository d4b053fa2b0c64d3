"""How a command reads its flags: the recipe's defaults, then `--config FILE.yaml`, then the
command line, into the argument dataclasses; argparse's own mistakes become one sentence."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from hf_finetune.core.checks import bounded_int, check_training_values, finite_float
from hf_finetune.core.config_file import config_file_argv
from hf_finetune.core.errors import UserError, remember_flags_from_config_file
from hf_finetune.core.help import (
    HELP_EPILOG,
    HELP_USAGE,
    HelpFormatter,
    ShowEveryFlag,
    _command_help,
    _CommandHelp,
    arrange_in_sections,
    command_prog,
    hf_argparser,
    module_prog,
    short_description,
)
from hf_finetune.core.report.command import record_command
from hf_finetune.core.training_flags import CommonTrainingArguments, is_training_arguments, real_training_arguments

CHECKED_TYPES = {float: finite_float, int: bounded_int}


def argparse_sentence(message: str) -> str:
    """argparse's own mistake as one sentence naming the flag as typed."""
    # "argument --learning_rate/--learning-rate: invalid float value: 'abc'" -> "--learning_rate: ..."
    message = re.sub(r"^argument (--[\w.]+)(/--[\w.-]+)*", r"\1", message).rstrip(".")
    flag = re.match(r"(--[\w.]+): expected one argument", message)
    if flag:  # argparse reads a value that starts with "-" (-1,2) as a flag
        message = f"{flag[1]}: needs a value (one that starts with '-' reads as a flag: write {flag[1]}=VALUE)"
    return f"{message}; see --help."


def check_text_tokens(argv: Sequence[str], switches: frozenset[str] = frozenset()) -> None:
    """Refuse a command-line value holding bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which every tokenizer refuses with a traceback). `switches`: the flags that take no
    value (the text after one is an argument of its own)."""
    flag = None
    for position, token in enumerate(argv, 1):
        try:
            token.encode("utf-8")
        except UnicodeEncodeError:
            where = f"the value of {flag}" if flag else f"argument {position}"
            raise UserError(f"{where} is not UTF-8 text (it holds bytes the terminal could not decode); write it in "
                            f"UTF-8.") from None  # fmt: skip
        flag = token if token.startswith("--") and "=" not in token and token not in switches else None


class ToolParser(argparse.ArgumentParser):
    """The small tools' parser: defaults shown, `--help-all` accepted like `--help`, and argparse's
    own mistakes (a missing argument, a bad number) as one sentence, not usage + exit; numbers
    finite and of a size a count can have, text UTF-8."""

    def __init__(self, prog: str, description: str | None = None):
        super().__init__(prog=command_prog(prog), description=description, formatter_class=HelpFormatter,
                         add_help=False)  # fmt: skip
        self.add_argument("-h", "--help", "--help-all", action="help", help="show this help and exit")

    def add_argument(self, *args, **kwargs):
        kwargs["type"] = CHECKED_TYPES.get(kwargs.get("type"), kwargs.get("type"))
        if kwargs["type"] is None:
            del kwargs["type"]
        return super().add_argument(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else args
        switches = frozenset(option for action in self._actions if action.nargs == 0 for option in action.option_strings)
        check_text_tokens(args, switches)
        try:  # texts before or after the flags, as a user types them (`predict RUN --json "a text"`)
            return super().parse_intermixed_args(args, namespace)
        except TypeError:  # a parser argparse cannot intermix (a REMAINDER argument): as given
            return super().parse_args(args, namespace)

    def error(self, message: str):
        raise UserError(argparse_sentence(message))


class ArgumentParser(hf_argparser.HfArgumentParser):
    """The dataclasses' flags in help sections, and argparse's own mistakes (a bad number, a bad
    choice) as one sentence, not usage + exit."""

    def __init__(self, dataclass_types: Sequence[type], description: str | None = None, **kwargs):
        super().__init__(list(dataclass_types), formatter_class=HelpFormatter, usage=HELP_USAGE, epilog=HELP_EPILOG,
                         description=short_description(description), **kwargs)  # fmt: skip
        self.full_description = description  # --help-all's
        # -h and --help-all: named by the usage line, not a section of their own
        next(action for action in self._actions if "-h" in action.option_strings).help = argparse.SUPPRESS
        self.add_argument("--help-all", action=ShowEveryFlag, help=argparse.SUPPRESS)
        self.hidden_help = arrange_in_sections(self, self.dataclass_types)
        for action in self._actions:  # numbers finite and of a size a count can have
            action.type = CHECKED_TYPES.get(action.type, action.type)

    def error(self, message: str):
        raise UserError(argparse_sentence(message))


# Flags naming a file, folder or model: an empty value would silently mean the working folder (or nothing).
PATH_FLAGS = {
    "output_dir": "a folder",
    "dataset": "a dataset name, file or folder",
    "model_name_or_path": "a model folder or Hub id",
    "resume_from_checkpoint": "auto or a checkpoint folder",
}


def check_no_empty_paths(arguments) -> None:
    for name, what in PATH_FLAGS.items():
        if getattr(arguments, name, None) == "":
            raise UserError(f"--{name}: the value is empty; give {what}.")


def asks_for_help(argv: Sequence[str]) -> bool:
    """-h or --help (not --help-all): the page that needs no torch."""
    return ("-h" in argv or "--help" in argv) and "--help-all" not in argv


def exit_with_help_if_asked(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, defaults: dict[str, Any] | None = None
) -> None:
    """With --help: print the command's help and exit, before the caller imports its method (torch,
    seconds); otherwise nothing."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if asks_for_help(argv):
        parse_arguments(dataclass_types, argv, defaults)


def parse_arguments(
    dataclass_types: Sequence[type],
    argv: Sequence[str] | None = None,
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
) -> tuple:
    """Parse `argv` into instances of `dataclass_types` (recipe defaults < YAML < CLI). Plain --help
    shows CommonTrainingArguments' flags; everything else gets transformers' TrainingArguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    check_text_tokens(argv)
    help_only = asks_for_help(argv)
    typed = list(argv)
    if not help_only:
        dataclass_types = real_training_arguments(dataclass_types)
    command = _command_help.get() or _CommandHelp()
    prog, description = command.prog or module_prog(), command.description or description
    parser = ArgumentParser(dataclass_types, prog=prog, description=description)
    known = {item.name for dataclass_type in dataclass_types for item in fields(dataclass_type)}
    defaults = dict(defaults or {})
    unknown = set(defaults) - known
    if help_only:  # the recipe's defaults of flags --help leaves out
        defaults = {name: value for name, value in defaults.items() if name in known}
    elif unknown:
        raise ValueError(f"recipe defaults name unknown flags: {sorted(unknown)}")
    if any(is_training_arguments(item) and item is not CommonTrainingArguments for item in dataclass_types):
        from hf_finetune.core.model.device import cpu_processes_without_accelerator  # torch
        from hf_finetune.core.model.precision import PRECISION_UNSET
        from hf_finetune.core.run.machines import machine_defaults

        # --bf16/--fp16 default to None (not given): the run chooses for the hardware (model/precision.py).
        # A launch over several machines: a shorter wait for a machine that stops answering (run/machines.py).
        defaults = {**cpu_processes_without_accelerator(), **machine_defaults(), **PRECISION_UNSET, **defaults}
    parser.set_defaults(**defaults)
    list_flags = frozenset(action.dest for action in parser._actions if action.nargs in ("+", "*"))
    argv, from_file = config_file_argv(argv, known, list_flags)
    remember_flags_from_config_file(from_file)
    try:
        try:
            parsed = parser.parse_args_into_dataclasses(args=argv)
        except (ValueError, OverflowError) as error:  # TrainingArguments validates flag combinations in __post_init__
            message = " ".join(str(error).split())
            if message.startswith("Some specified arguments are not used"):
                unused = set(re.findall(r"'([^']*)'", message))  # the list HfArgumentParser prints
                unknown = [token for token in argv if token.startswith("--") and token in unused]
                raise UserError(f"unknown flag(s): {', '.join(unknown) or message}; see --help.") from None
            # Name the fields the user set as the flags they typed: "fp16 and bf16" -> "--fp16 and --bf16".
            for name in {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")} & known:
                message = re.sub(rf"(?<![-\w]){re.escape(name)}(?!\w)", f"--{name}", message)
            raise UserError(f"conflicting or invalid flags: {message.rstrip('.')}.") from None
        given = frozenset(token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--"))
        for item in parsed:
            check_no_empty_paths(item)
            if is_training_arguments(type(item)):
                check_training_values(item)
            if any(item_field.name == "given_flags" for item_field in fields(item)):
                item.given_flags = given
        record_command(prog, typed)
    except UserError as error:
        flag = re.match(r"--\w+", str(error))
        if flag and flag[0] in from_file:
            raise UserError(f"{str(error).rstrip('.')} (set in --config {from_file[flag[0]]}).") from None
        raise
    return parsed
