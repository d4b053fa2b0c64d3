"""The `--help` layout: the command's own flags first, then the common ones in sections (data,
model, training, LoRA, hub, logging) with the defaults the command really uses; of the ~115
TrainingArguments flags the common ones, and `--help-all` every one.

Each argument dataclass names its section (`help_section`, `flag_sections`, `rare_flags`); a
dataclass that names none is the command's own.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from pathlib import Path

from hf_finetune.core.checks import bounded_int, finite_float
from hf_finetune.core.training_flags import RARE_TRAINING_FLAGS, TRAINING_FLAGS, is_training_arguments


def _load_hf_argparser():
    """transformers' hf_argparser module (HfArgumentParser), loaded from its file alone: it imports
    nothing else of transformers, whose package import (torch) takes seconds, and --help needs none
    of it. A transformers whose hf_argparser imports more of the package gets the ordinary import."""
    path = Path(importlib.util.find_spec("transformers").origin).parent / "hf_argparser.py"
    spec = importlib.util.spec_from_file_location("hf_finetune.core._hf_argparser", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:  # a relative import: it needs its package
        from transformers import hf_argparser as module
    return module


hf_argparser = _load_hf_argparser()

# At most 80 columns a line: --help fits an 80-column terminal (tests/core/test_cli_help.py).
HELP_USAGE = "%(prog)s [--flag VALUE ...]   (--help-all: every flag)"
HELP_EPILOG = "Switches: --bf16 on, --bf16 false off. --config FILE.yaml: flags from YAML."


def short_description(description: str | None) -> str | None:
    """A command's description for plain --help: its opening and its examples (the first indented
    block); the story after them is --help-all's."""
    lines = (description or "").splitlines()
    in_examples = False
    for index, line in enumerate(lines):
        if line.startswith("    "):
            in_examples = True
        elif in_examples and not line.strip():
            return "\n".join(lines[:index])
    return description


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


def module_prog() -> str | None:
    """`python -m hf_finetune.classify` for a module of this package run with -m, not argparse's
    `classify.py`; None (argparse's file name) for a script such as recipes/spam.py."""
    script = Path(os.path.abspath(sys.argv[0]))  # not resolved: recipes/ is a link into the package
    package = Path(__file__).resolve().parents[1]
    if script.suffix != ".py" or package not in script.parents:
        return None
    return "python -m " + ".".join(script.relative_to(package.parent).with_suffix("").parts)


VALUE_NAMES = {int: "INT", float: "FLOAT", Path: "PATH", finite_float: "FLOAT", bounded_int: "INT"}


def _is_dash_alias(flag: str, flags: Sequence[str]) -> bool:
    """--learning-rate, the alias HfArgumentParser adds beside --learning_rate."""
    return flag.startswith("--") and "-" in flag[2:] and f"--{flag[2:].replace('-', '_')}" in flags


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples (indented lines) keep their line breaks, prose is wrapped to the terminal; each
    flag shows once (not also as its --dash-form alias), with the kind of value it takes and its
    default. A switch (`--bf16`, `--bf16 false`) shows a default only when it is on."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
        return "\n\n".join(
            paragraph if paragraph.startswith(" ") else textwrap.fill(" ".join(paragraph.split()), width)
            for paragraph in paragraphs
        )

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        flags = ", ".join(flag for flag in action.option_strings if not _is_dash_alias(flag, action.option_strings))
        if action.nargs == 0 or _is_switch(action):
            return flags
        return f"{flags} {self._format_args(action, self._get_default_metavar_for_optional(action))}"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return "BOOL" if _takes_bool(action) else VALUE_NAMES.get(action.type, "TEXT")

    def _split_lines(self, text: str, width: int) -> list[str]:
        # "(default: 1)" stays on one line, not "(default:" at one line's end and "1)" on the next.
        return [line.replace("\0", " ") for line in super()._split_lines(text.replace("(default: ", "(default:\0"), width)]

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


def _takes_bool(action: argparse.Action) -> bool:
    """HfArgumentParser's bool flags take `string_to_bool` (of whichever copy of its module built them)."""
    return getattr(action.type, "__name__", None) == "string_to_bool"


def _is_switch(action: argparse.Action) -> bool:
    """A dataclass bool: `--flag` alone means true, `--flag false` also works."""
    return action.nargs == "?" and _takes_bool(action)


# Help sections, in the order --help shows them after the command's own flags.
SECTIONS = ("data", "model", "training", "LoRA", "hub", "logging")
MORE_TRAINING_FLAGS = "more training flags (TrainingArguments)"
OWN_SECTION = "command"  # a dataclass that names no section: the command's own flags

def section_of(dataclass_type: type, name: str) -> str:
    """The --help section of field `name` of `dataclass_type`."""
    if is_training_arguments(dataclass_type):
        return TRAINING_FLAGS[name][0] if name in TRAINING_FLAGS else MORE_TRAINING_FLAGS
    own = getattr(dataclass_type, "help_section", OWN_SECTION)
    return getattr(dataclass_type, "flag_sections", {}).get(name, own)


# Flags several methods share, left to --help-all in every command that has them: where the data
# comes from when not the Hub, and the size of what the run generates and reports.
RARE_IN_EVERY_COMMAND = frozenset(
    {"dataset_url", "cache_dir", "max_new_tokens", "generation_batch_size", "report_examples", "judge_model"}
)


def is_rare(dataclass_type: type, name: str) -> bool:
    """A flag --help leaves to --help-all: a rarely changed TrainingArguments flag, one of
    RARE_IN_EVERY_COMMAND, or one named in `rare_flags` of its dataclass or of a base class (a
    method's dataclass that extends a shared one keeps the shared one's rare flags)."""
    if is_training_arguments(dataclass_type):
        return name in RARE_TRAINING_FLAGS
    return name in RARE_IN_EVERY_COMMAND or any(name in vars(cls).get("rare_flags", ()) for cls in dataclass_type.__mro__)


class ShowEveryFlag(argparse.Action):
    """--help-all: the help with every flag."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        for action, help_text in parser.hidden_help.items():
            action.help = help_text
        parser.description = getattr(parser, "full_description", parser.description)
        parser.print_help()
        parser.exit()


def arrange_in_sections(parser: argparse.ArgumentParser, dataclass_types: Sequence[type]) -> dict:
    """Move each dataclass flag of `parser` into its help section and hide the rare ones; returns
    the hidden flags with their help texts, for --help-all.

    HfArgumentParser puts a dataclass's flags in one group (`_argument_group_name`), but
    TrainingArguments' flags belong to several sections: each flag moves to its own."""
    owners = {item.name: dtype for dtype in dataclass_types for item in fields(dtype)}
    own = [section_of(dtype, "") for dtype in dataclass_types if not is_training_arguments(dtype)]
    titles = dict.fromkeys([*(title for title in own if title not in SECTIONS), *SECTIONS, MORE_TRAINING_FLAGS])
    sections = {title: parser.add_argument_group(title) for title in titles}
    position = {name: index for index, name in enumerate(TRAINING_FLAGS)}
    flags = [action for action in parser._optionals._group_actions if action.dest in owners]  # not --help
    hidden: dict[argparse.Action, str | None] = {}
    # The dataclasses' flags in their order, the curated TrainingArguments in TRAINING_FLAGS' order.
    for action in sorted(flags, key=lambda action: position.get(action.dest, -1)):
        owner = owners[action.dest]
        title = section_of(owner, action.dest)
        parser._optionals._group_actions.remove(action)
        sections.setdefault(title, parser.add_argument_group(title))._group_actions.append(action)
        if action.dest in TRAINING_FLAGS:
            action.help = TRAINING_FLAGS[action.dest][1]
        if action.choices is not None and (len(action.choices) > 3 or action.dest in TRAINING_FLAGS):
            action.metavar = "NAME"  # not the 41 optimizers; the help names the common ones (or all)
        # Hidden from --help (they all still work): the rarer TrainingArguments and flags of ours, and
        # the --no_X forms of flags that default to true (--X false says the same).
        if title == MORE_TRAINING_FLAGS or is_rare(owner, action.dest) or action.option_strings[0] == f"--no_{action.dest}":
            hidden[action] = action.help
            action.help = argparse.SUPPRESS
    return hidden
