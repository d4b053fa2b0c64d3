"""A conversation's turns: who speaks (the roles) and what they say. No datasets or torch here:
the chat recipe builds its demo conversations before `--help` is decided."""

from __future__ import annotations

from dataclasses import dataclass

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"


@dataclass(frozen=True)
class Turn:
    role: str
    content: str
