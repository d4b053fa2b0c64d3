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
from typing import Any, Callable, Iterable

import datasets

from hf_finetune.core.data.files import json_type
from hf_finetune.core.data.sources import load_source
from hf_finetune.core.errors import UserError

from .turns import ASSISTANT, SYSTEM, USER, Turn

ROLE_ALIASES = {
    "user": USER,
    "human": USER,
    "assistant": ASSISTANT,
    "gpt": ASSISTANT,
    "bot": ASSISTANT,
    "model": ASSISTANT,
    "system": SYSTEM,
}


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


def _turn_from_mapping(message: Any, number: int) -> Turn:
    if not isinstance(message, dict):
        raise ValueError(f"turn {number} is {json_type(message)}, not an object with role and content")
    role_key = "role" if "role" in message else "from" if "from" in message else None
    content_key = "content" if "content" in message else "value" if "value" in message else None
    if role_key is None or content_key is None:
        raise ValueError(
            f"turn {number} has no '{'role' if role_key is None else 'content'}' key (it has "
            f"{', '.join(sorted(map(str, message))) or 'none'}); each turn needs role and content (or from and value)"
        )
    role, content = message[role_key], message[content_key]
    canonical = ROLE_ALIASES.get(role.lower()) if isinstance(role, str) else None
    if canonical is None:
        raise ValueError(f"turn {number} has role {role!r}, not one of system, user, assistant (or {', '.join(a for a in ROLE_ALIASES if a not in (USER, ASSISTANT, SYSTEM))})")
    if not isinstance(content, str):
        raise ValueError(f"the content of turn {number} ({role}) is {json_type(content)}, not text")
    return Turn(canonical, content.strip())


def _turns(messages: Any, column: str) -> Conversation:
    if not isinstance(messages, list):
        raise ValueError(f"'{column}' is {json_type(messages)}, not a list of turns")
    if not messages:
        raise ValueError(f"'{column}' is an empty conversation (no turns)")
    return [_turn_from_mapping(message, number) for number, message in enumerate(messages, start=1)]


def conversation_from_row(row: dict, text_column: str, form: ChatForm, drop_strings: Iterable[str] = ()) -> Conversation:
    """One dataset row to a conversation (see the module docstring for the accepted shapes).

    The shape is the first of messages/conversations, prompt+completion, text whose value the row
    has; a row with none names the column of its data's shape that is missing or null."""
    for column in ("messages", "conversations"):
        if row.get(column) is not None:
            return _turns(row[column], column)
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is not None and completion is not None:
        if isinstance(prompt, list) and isinstance(completion, list):
            if not completion:
                raise ValueError("'completion' is an empty list of turns")
            return _turns(prompt + completion, "prompt + completion")
        if isinstance(prompt, str) and isinstance(completion, str):
            if not completion.strip():
                raise ValueError("'completion' is empty")
            if form.human_tag.strip() in prompt:
                return parse_text_form(prompt + completion, form, drop_strings)
            if not prompt.strip():
                raise ValueError("'prompt' is empty")
            return [Turn(USER, prompt.strip()), Turn(ASSISTANT, completion.strip())]
        raise ValueError(
            f"'prompt' is {json_type(prompt)} and 'completion' is {json_type(completion)}; they must both be text "
            f"or both be lists of turns"
        )
    text = row.get(text_column)
    if isinstance(text, str):
        if not text.strip():
            raise ValueError(f"'{text_column}' is empty")
        return parse_text_form(text, form, drop_strings)
    # No shape has its values: name the value the row's own columns miss.
    for column in ("messages", "conversations"):
        if column in row:
            raise ValueError(f"'{column}' is null; each row needs its list of turns")
    if "prompt" in row or "completion" in row:
        missing = next(column for column in ("prompt", "completion") if row.get(column) is None)
        raise ValueError(f"'{missing}' is {'null' if missing in row else 'missing'}; a prompt-completion row needs both")
    if text_column in row:
        raise ValueError(f"'{text_column}' is {json_type(text)}, not text")
    raise ValueError(
        f"it has none of the columns '{text_column}', 'prompt'+'completion', 'messages' (it has "
        f"{', '.join(sorted(row)) or 'none'}); name the text column with --text_column"
    )


def conversations_from_dataset(
    dataset: datasets.Dataset,
    text_column: str,
    form: ChatForm,
    origin: str,
    drop_strings: Iterable[str] = (),
    place: Callable[[int], str] | None = None,
) -> list[Conversation]:
    """Every row as a conversation; `place(index)` says where a row is (default: origin, row N)."""
    place = place or (lambda index: f"{origin}, row {index + 1}")
    conversations = []
    for index, row in enumerate(dataset):
        try:
            turns = conversation_from_row(row, text_column, form, drop_strings)
        except ValueError as error:
            raise UserError(f"--dataset: {place(index)}: {error}.") from None
        if not any(turn.role == ASSISTANT for turn in turns):
            raise UserError(f"--dataset: {place(index)}: the conversation has no assistant turn, so nothing to learn.")
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
    conversations = conversations_from_dataset(
        source.splits["train"], text_column, form, source.origin, drop_strings,
        place=lambda index: source.place("train", index),
    )  # fmt: skip
    return conversations, source.origin


def render_text(conversation: Conversation, form: ChatForm) -> str:
    """The conversation in text form, without special tokens (for reports and datasets)."""
    return "".join(form.tag(turn.role) + (f" {turn.content}" if turn.content else "") for turn in conversation)


def conversation_text(conversation: Conversation) -> str:
    """The turns' contents, a line each, without tags: what the leakage check and --dedupe compare
    (tags shared by every conversation would make them all look alike)."""
    return "\n".join(turn.content for turn in conversation)
