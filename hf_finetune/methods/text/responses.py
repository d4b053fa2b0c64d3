"""Greedy responses to Alpaca-style entries, batched (core.model.generation), as instruction tuning
and preference tuning score them."""

from __future__ import annotations

from hf_finetune.core.model.generation import greedy_generate, prompt_room
from hf_finetune.core.model.loading import position_limit
from hf_finetune.core.report.console import logger

from . import DEFAULT_MAX_NEW_TOKENS
from .prompt import extract_response, prompt_ids

DEFAULT_BATCH_SIZE = 8


def generate_responses(
    model,
    tokenizer,
    entries: list[dict],
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    description: str = "answering",
) -> list[str]:
    """Greedy responses to `entries` (dicts with instruction and optional input), in order.

    The method's truncation rule, as in training: a prompt too long to leave room for
    `max_new_tokens` in the model's context loses the end of its request, never the response
    header (said as a warning); core.model.generation batches the prompts with left padding and stops
    each at end-of-text.
    """
    room = prompt_room(position_limit(model.config), max_new_tokens)
    prompts, cut = [], 0
    for entry in entries:
        request, header = prompt_ids(tokenizer, entry["instruction"], entry.get("input") or "")
        if room is not None and len(request) + len(header) > room:
            request = request[: max(1, room - len(header))]
            cut += 1
        prompts.append(request + header)
    if cut:
        logger.warning(f"note: {cut} prompt(s) longer than {room} tokens lost the end of their request, so that "
                       f"{max_new_tokens} new tokens fit the model's context.")  # fmt: skip
    answers = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size, description)  # a live bar
    return [extract_response(answer) for answer in answers]
