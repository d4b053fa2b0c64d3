"""Token ids and labels for the three causal LM methods, and the chat template that matches them.

A conversation is tokenized segment by segment (tag, content, special token), so every token
knows whether it belongs to an assistant answer. The same ids serve every method; only the
labels differ:
- copy-labels: labels = input_ids, every token is learned;
- masked: -100 everywhere but the assistant answers and the end-of-sequence closing each;
- completion-only: TRL builds the labels itself, from prompt-completion pairs or from the
  `{% generation %}` markers of `chat_template(form)`, which writes the same text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import datasets

from hf_finetune.core.data.collate import IGNORE_INDEX

from .conversations import ASSISTANT, ChatForm, Conversation, Turn

COPY_LABELS, MASKED, COMPLETION_ONLY = "copy_labels", "masked", "completion_only"
LOSS_METHODS = (COPY_LABELS, MASKED, COMPLETION_ONLY)  # --method


@dataclass
class EncodedConversation:
    input_ids: list[int]
    is_target: list[bool]  # True for assistant answer tokens and the eos closing each answer
    truncated: bool = False


def answer_text(content: str) -> str:
    # The space belongs to the answer, so the prompt ends on the tag's ':' (a token boundary).
    return f" {content}" if content else ""


def _segments(turns: Conversation, form: ChatForm, tokenizer, add_generation_prompt: bool = False):
    """(text or token id, is_target) pieces of the conversation, in order."""
    for turn in turns:
        if turn.role == ASSISTANT:
            yield form.assistant_tag, False
            if form.bos_after_assistant_tag:
                yield tokenizer.bos_token_id, False
            yield answer_text(turn.content), True
            yield tokenizer.eos_token_id, True
        else:
            yield form.tag(turn.role) + answer_text(turn.content), False
    if add_generation_prompt:
        yield form.assistant_tag, False
        if form.bos_after_assistant_tag:
            yield tokenizer.bos_token_id, False


def leading_special_ids(tokenizer) -> list[int]:
    """Ids the tokenizer puts before any text by itself (Llama's <s>; none for GPT-2 and Bloom)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def encode_conversation(
    turns: Conversation, form: ChatForm, tokenizer, max_length: int | None = None
) -> EncodedConversation:
    ids = leading_special_ids(tokenizer)
    is_target = [False] * len(ids)
    for piece, target in _segments(turns, form, tokenizer):
        if isinstance(piece, int):
            piece_ids = [piece]
        elif piece:
            piece_ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        else:
            piece_ids = []
        ids += piece_ids
        is_target += [target] * len(piece_ids)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:  # keep the start: a cut answer still teaches its first tokens
        ids, is_target = ids[:max_length], is_target[:max_length]
    return EncodedConversation(ids, is_target, truncated)


def encode_prompt(turns: Conversation, form: ChatForm, tokenizer) -> list[int]:
    """Ids of `turns` followed by the assistant tag: what the model continues at generation."""
    ids = leading_special_ids(tokenizer)
    for piece, _ in _segments(turns, form, tokenizer, add_generation_prompt=True):
        ids += [piece] if isinstance(piece, int) else tokenizer(piece, add_special_tokens=False)["input_ids"]
    return ids


def labels_for(method: str, encoded: EncodedConversation) -> list[int]:
    if method == COPY_LABELS:
        return list(encoded.input_ids)
    if method == MASKED:
        return [token if target else IGNORE_INDEX for token, target in zip(encoded.input_ids, encoded.is_target)]
    raise ValueError(f"{method} labels are built by TRL, not here")


def loss_token_count(labels: list[int]) -> int:
    """Positions that carry loss: the model predicts labels[1:] (the first token has no context)."""
    return sum(1 for label in labels[1:] if label != IGNORE_INDEX)


def conversation_records(conversations: list[Conversation]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"messages": [[{"role": t.role, "content": t.content} for t in turns] for turns in conversations]}
    )


def turns_of(messages: list[dict]) -> Conversation:
    return [Turn(message["role"], message["content"]) for message in messages]


def encode_for_trainer(
    conversations: list[Conversation], method: str, form: ChatForm, tokenizer, max_length: int | None
) -> tuple[datasets.Dataset, dict]:
    """input_ids/attention_mask/labels for `Trainer`; examples left with no target are dropped.

    Returns the dataset and counts: truncated, dropped, loss_tokens and tokens per epoch.
    """

    def encode(batch):
        out = {"input_ids": [], "attention_mask": [], "labels": [], "truncated": []}
        for messages in batch["messages"]:
            encoded = encode_conversation(turns_of(messages), form, tokenizer, max_length)
            out["input_ids"].append(encoded.input_ids)
            out["attention_mask"].append([1] * len(encoded.input_ids))
            out["labels"].append(labels_for(method, encoded))
            out["truncated"].append(encoded.truncated)
        return out

    encoded = conversation_records(conversations).map(
        encode, batched=True, remove_columns=["messages"], desc=f"encoding ({method})"
    )
    truncated = sum(encoded["truncated"])
    kept = encoded.filter(lambda example: loss_token_count(example["labels"]) > 0, desc="dropping targetless")
    counts = {
        "truncated": truncated,
        "dropped": len(encoded) - len(kept),
        "loss_tokens": sum(loss_token_count(labels) for labels in kept["labels"]),
        "tokens": sum(len(ids) for ids in kept["input_ids"]),
    }
    return kept.remove_columns("truncated"), counts


def trl_counts(dataset: datasets.Dataset, conversations: int, as_messages: bool) -> dict:
    """What TRL's SFTTrainer made of the conversations: the format, dropped rows, tokens carrying loss."""
    return {
        "format": "messages + assistant_only_loss" if as_messages else "prompt-completion + completion_only_loss",
        "dropped": conversations - len(dataset),
        "loss_tokens": sum(loss_token_count(row) for row in dataset["labels"]),
        "tokens": sum(len(row) for row in dataset["input_ids"]),
    }


def longer_than(dataset: datasets.Dataset, tokenizer, max_length: int | None, as_messages: bool) -> int:
    """How many of TRL's records are longer than `max_length` tokens (with the eos TRL adds): TRL's
    SFTTrainer cuts their end, the answer's last tokens, without a word, so the plan counts them."""
    if max_length is None:
        return 0
    if as_messages:
        lengths = [len(tokenizer.apply_chat_template(messages, tokenize=True)) for messages in dataset["messages"]]
    else:
        lengths = [len(tokenizer(prompt + completion, verbose=False)["input_ids"]) + 1
                   for prompt, completion in zip(dataset["prompt"], dataset["completion"])]  # fmt: skip
    return sum(length > max_length for length in lengths)


def is_single_exchange(turns: Conversation) -> bool:
    """One answer, at the end: expressible as one prompt-completion pair."""
    return turns[-1].role == ASSISTANT and sum(turn.role == ASSISTANT for turn in turns) == 1


def prompt_completion_records(conversations: list[Conversation], form: ChatForm, tokenizer) -> datasets.Dataset:
    """TRL prompt-completion rows: the text up to the assistant tag, and the answer (TRL adds the eos)."""
    bos = tokenizer.bos_token if form.bos_after_assistant_tag else ""
    prompts, completions = [], []
    for turns in conversations:
        prompt = "".join(form.tag(t.role) + answer_text(t.content) for t in turns[:-1])
        prompts.append(prompt + form.assistant_tag + bos)
        completions.append(answer_text(turns[-1].content))
    return datasets.Dataset.from_dict({"prompt": prompts, "completion": completions})


def _jinja_literal(text: str) -> str:
    return json.dumps(text)


def chat_template(form: ChatForm) -> str:
    """A Jinja chat template writing conversations exactly as `encode_conversation` does, with
    `{% generation %}` around each answer and its closing eos (what TRL's assistant_only_loss trains)."""
    bos = " + bos_token" if form.bos_after_assistant_tag else ""
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'assistant' -%}"
        "{{ " + _jinja_literal(form.assistant_tag) + bos + " }}"
        "{%- generation -%}"
        "{{ (' ' + message['content']) if message['content'] else '' }}{{ eos_token }}"
        "{%- endgeneration -%}"
        "{%- elif message['role'] == 'system' -%}"
        "{{ " + _jinja_literal(form.system_tag) + " }}{{ (' ' + message['content']) if message['content'] else '' }}"
        "{%- else -%}"
        "{{ " + _jinja_literal(form.human_tag) + " }}{{ (' ' + message['content']) if message['content'] else '' }}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ " + _jinja_literal(form.assistant_tag) + bos + " }}{%- endif -%}"
    )
