"""`hf-finetune COMMAND [flags]` (or `python -m hf_finetune COMMAND [flags]`): every method and tool
under one name. Each command runs exactly what its script or module runs (same defaults, same
messages, same exit codes); `hf-finetune COMMAND --help` shows its flags.

Under accelerate, name the package as the module to launch:
    accelerate launch -m hf_finetune spam --num_train_epochs 1
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.help import command_help


class Command(NamedTuple):
    module: str  # has main(argv)
    summary: str


TRAINING_COMMANDS = {
    "spam": Command("hf_finetune.recipes.spam", "GPT-2 + class head on the SMS Spam Collection (recipes/spam.py)"),
    "classify": Command("hf_finetune.recipes.classify", "any text/label data: label token (default) or --method head"),
    "instruction": Command("hf_finetune.recipes.instruction", "Alpaca instruction tuning (recipes/instruction.py)"),
    "chat": Command("hf_finetune.recipes.spanish_chat", "chat tuning, three loss methods (recipes/spanish_chat.py)"),
    "preference": Command("hf_finetune.recipes.preference", "DPO after instruction tuning (recipes/preference.py)"),
    "reward": Command("hf_finetune.recipes.reward", "a reward model on preference pairs (recipes/reward.py)"),
    "grpo": Command("hf_finetune.recipes.grpo", "GRPO from checkable rewards or a reward model (recipes/grpo.py)"),
}
TOOLS = {
    "predict": Command("hf_finetune.predict", "classify texts with a finished spam/classify run"),
    "generate": Command("hf_finetune.generate", "answer an instruction with a finished instruction run"),
    "chat-answer": Command("hf_finetune.chat_answer", "answer questions with a finished chat run"),
    "score": Command("hf_finetune.score", "score answers to a prompt with a finished reward run"),
    "compare": Command("hf_finetune.compare", "compare finished runs or --seeds series: flags, metrics, curves"),
    "tiny": Command("hf_finetune.tiny", "write a random-init GPT-2 or Bloom (offline tests and smoke runs)"),
}
COMMANDS = {**TRAINING_COMMANDS, **TOOLS}


def overview() -> str:
    def listing(commands: dict[str, Command]) -> str:
        return "\n".join(f"  {name:<13}{command.summary}" for name, command in commands.items())

    return f"""usage: hf-finetune COMMAND [flags]

Fine-tune causal language models (GPT-2, Bloom, any Hugging Face causal LM).

train a model:
{listing(TRAINING_COMMANDS)}

use a finished run, or make a model:
{listing(TOOLS)}

hf-finetune COMMAND --help      the command's own flags, then the common ones, with defaults
hf-finetune COMMAND --help-all  every flag, all of TrainingArguments' (seconds: it imports them)
accelerate launch -m hf_finetune COMMAND [flags]    the same under accelerate"""


def main(argv: list[str] | None = None) -> object:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # as argparse with a required command: the overview, and a status that says nothing ran
        print(overview(), file=sys.stderr)
        raise UserError("name a command, e.g. hf-finetune spam --help.")
    if argv[0] in ("-h", "--help", "--help-all"):
        print(overview())
        return None
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UserError(f"'{name}' is not a command; use one of {', '.join(COMMANDS)} (hf-finetune --help).")
    command = importlib.import_module(COMMANDS[name].module)
    with command_help(prog=f"hf-finetune {name}"):
        return command.main(rest)


def run_command_line() -> None:
    """The `hf-finetune` console script."""
    run_cli(main)
