"""Conversations for causal LM fine-tuning: read from any of three data shapes into one form.

Accepted rows (one conversation each):
- `text` in the `### Human: ... ### Assistant: ...` form (the tutorial's; the tags can be changed);
- `prompt` and `completion`: plain strings (one human turn and its answer; a prompt that already
  holds the tags is read as text form), or TRL's conversational prompt-completion (message lists);
- `messages` (or ShareGPT `conversations`): a list of {role, content} (or {from, value}) turns.

Every conversation becomes a list of `Turn(role, content)` with roles system, user, assistant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import datasets

from hf_finetune.core.errors import UserError
from hf_finetune.core.sources import load_source

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
ROLE_ALIASES = {
    "user": USER,
    "human": USER,
    "assistant": ASSISTANT,
    "gpt": ASSISTANT,
    "bot": ASSISTANT,
    "model": ASSISTANT,
    "system": SYSTEM,
}


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


Conversation = list[Turn]


@dataclass(frozen=True)
class ChatForm:
    """How a conversation is written as text: the tags in front of each turn, and whether the
    tutorial's beginning-of-sequence token follows every assistant tag."""

    human_tag: str = "\n\n### Human:"
    assistant_tag: str = "\n\n### Assistant:"
    system_tag: str = "\n\n### System:"
    bos_after_assistant_tag: bool = False

    def tag(self, role: str) -> str:
        return {USER: self.human_tag, ASSISTANT: self.assistant_tag, SYSTEM: self.system_tag}[role]


def parse_text_form(text: str, form: ChatForm, drop_strings: Iterable[str] = ()) -> Conversation:
    """Split `### Human: ... ### Assistant: ...` text into turns.

    Tags are matched without their leading blank lines, so a text that starts with `### Human:`
    parses too. Strings in `drop_strings` (the tokenizer's bos/eos written out, as in the
    tutorial's preprocessed texts) are removed from the contents.
    """
    tags = {form.human_tag.strip(): USER, form.assistant_tag.strip(): ASSISTANT, form.system_tag.strip(): SYSTEM}
    pattern = re.compile("|".join(re.escape(tag) for tag in sorted(tags, key=len, reverse=True)))
    matches = list(pattern.finditer(text))
    if not matches or _without(text[: matches[0].start()], drop_strings).strip():
        raise ValueError(f"it does not start with a {form.human_tag.strip()!r} or {form.system_tag.strip()!r} tag")
    turns = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        turns.append(Turn(tags[match.group(0)], _without(text[match.end() : end], drop_strings).strip()))
    return turns


def _without(text: str, strings: Iterable[str]) -> str:
    for string in strings:
        text = text.replace(string, "")
    return text


def _turn_from_mapping(message: Any) -> Turn:
    if not isinstance(message, dict):
        raise ValueError(f"a turn is {type(message).__name__}, not a mapping with role and content")
    role = message.get("role", message.get("from"))
    content = message.get("content", message.get("value"))
    if role is None or content is None:
        raise ValueError(f"a turn has keys {sorted(message)}, not role/content (or from/value)")
    canonical = ROLE_ALIASES.get(str(role).lower())
    if canonical is None:
        raise ValueError(f"role {role!r} is not one of {sorted(ROLE_ALIASES)}")
    if not isinstance(content, str):
        raise ValueError(f"the content of a {role} turn is {type(content).__name__}, not text")
    return Turn(canonical, content.strip())


def conversation_from_row(row: dict, text_column: str, form: ChatForm, drop_strings: Iterable[str] = ()) -> Conversation:
    """One dataset row to a conversation (see the module docstring for the accepted shapes)."""
    for column in ("messages", "conversations"):
        if row.get(column) is not None:
            if not isinstance(row[column], list):
                raise ValueError(f"column '{column}' holds {type(row[column]).__name__}, not a list of turns")
            return [_turn_from_mapping(message) for message in row[column]]
    if row.get("prompt") is not None and row.get("completion") is not None:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list) and isinstance(completion, list):
            return [_turn_from_mapping(message) for message in prompt + completion]
        if isinstance(prompt, str) and isinstance(completion, str):
            if form.human_tag.strip() in prompt:
                return parse_text_form(prompt + completion, form, drop_strings)
            return [Turn(USER, prompt.strip()), Turn(ASSISTANT, completion.strip())]
        raise ValueError("columns 'prompt' and 'completion' must both be strings or both be lists of turns")
    if isinstance(row.get(text_column), str):
        return parse_text_form(row[text_column], form, drop_strings)
    raise ValueError(
        f"it has none of the columns '{text_column}', 'prompt'+'completion', 'messages' (it has {sorted(row)})"
    )


def conversations_from_dataset(
    dataset: datasets.Dataset, text_column: str, form: ChatForm, origin: str, drop_strings: Iterable[str] = ()
) -> list[Conversation]:
    conversations = []
    for index, row in enumerate(dataset):
        try:
            turns = conversation_from_row(row, text_column, form, drop_strings)
        except ValueError as error:
            raise UserError(f"--dataset: {origin}, row {index + 1}: {error}.") from None
        if not any(turn.role == ASSISTANT for turn in turns):
            raise UserError(f"--dataset: {origin}, row {index + 1} has no assistant turn, so nothing to learn.")
        conversations.append(turns)
    if not conversations:
        raise UserError(f"--dataset: {origin} holds no conversations.")
    return conversations


def load_conversations(
    dataset: str, text_column: str, form: ChatForm, cache_dir: str | None = None, drop_strings: Iterable[str] = ()
) -> tuple[list[Conversation], str]:
    """The train split of `--dataset` as conversations, and a description of where it came from."""
    source = load_source(dataset, cache_dir=cache_dir, columns=(text_column, "label"))
    if "train" not in source.splits:
        raise UserError(f"--dataset: {dataset} has no train split (it has {sorted(source.splits)}).")
    return conversations_from_dataset(source.splits["train"], text_column, form, source.origin, drop_strings), source.origin


def render_text(conversation: Conversation, form: ChatForm) -> str:
    """The conversation in text form, without special tokens (for reports and datasets)."""
    return "".join(form.tag(turn.role) + (f" {turn.content}" if turn.content else "") for turn in conversation)
