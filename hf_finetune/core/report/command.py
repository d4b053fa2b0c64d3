"""The command that started a run, as the user typed it (`hf-finetune spam --max_steps 30`), with
secrets (`--hub_token VALUE`) replaced by `***`: the first line of a run's report.

parse_arguments records it when it reads the command line; the run's report reads it back in the
same thread (a series' runs share it).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from contextvars import ContextVar

HIDDEN = "***"

_typed: ContextVar[str | None] = ContextVar("typed_command", default=None)


def is_secret(flag: str) -> bool:
    """--hub_token and the like (a value that grants access); not --max_new_tokens or --special_tokens."""
    name = flag.lstrip("-").split("=", 1)[0].replace("-", "_")
    return name == "token" or name.endswith("_token")


def without_secrets(argv: Sequence[str]) -> list[str]:
    """`argv` with the value of every secret flag (`--hub_token X`, `--hub_token=X`) replaced by ***."""
    shown: list[str] = []
    hide_next = False
    for token in argv:
        if hide_next:
            shown.append(HIDDEN)
            hide_next = False
        elif token.startswith("--") and is_secret(token):
            if "=" in token:
                shown.append(token.split("=", 1)[0] + "=" + HIDDEN)
            else:
                shown.append(token)
                hide_next = True
        else:
            shown.append(token)
    return shown


def program(prog: str | None) -> str:
    """How the user started the command: `prog` when known (`hf-finetune spam`, `python -m
    hf_finetune.classify`), else `python SCRIPT` as typed (recipes/spam.py)."""
    if prog:
        return prog
    return f"python {sys.argv[0] if sys.argv and sys.argv[0] else 'SCRIPT'}"


def _quoted(token: str) -> str:
    """`token` as a shell reads it back; a hidden value stays readable (***, not '***')."""
    if token == HIDDEN or token.endswith("=" + HIDDEN):
        return shlex.quote(token[: -len(HIDDEN)]) + HIDDEN if token != HIDDEN else HIDDEN
    return shlex.quote(token)


def record_command(prog: str | None, argv: Sequence[str]) -> None:
    _typed.set(" ".join([program(prog), *(_quoted(token) for token in without_secrets(argv))]))


def typed_command() -> str | None:
    """The recorded command line, secrets removed; None when no command line was parsed."""
    return _typed.get()


def command_markdown() -> list[str]:
    """report.md's command paragraph (none when the run was not started from a command line)."""
    command = typed_command()
    return [f"Command:\n\n```bash\n{command}\n```"] if command else []
