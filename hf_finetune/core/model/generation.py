"""Batched greedy generation with left padding, for every method that lets a model answer."""

from __future__ import annotations

import torch

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import position_limit
from hf_finetune.core.report.console import logger, progress_bar


def prompt_room(limit: int | None, max_new_tokens: int) -> int | None:
    """The most prompt tokens that leave room for `max_new_tokens` in a context of `limit`
    positions (None: no fixed context). A prompt keeps at least half of the context, so an
    answer longer than the context still gets a question to answer."""
    if limit is None:
        return None
    return max(limit - max_new_tokens, limit // 2, 1)


def fit_from_the_left(prompts: list[list[int]], room: int | None) -> tuple[list[list[int]], int]:
    """Prompts longer than `room` lose their first tokens (the end, where the model answers, stays);
    returns the prompts and how many were cut."""
    if room is None:
        return prompts, 0
    fitted = [prompt[-room:] if len(prompt) > room else prompt for prompt in prompts]
    return fitted, sum(len(prompt) > room for prompt in prompts)


@torch.inference_mode()
def greedy_generate(
    model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int | None = None,
    description: str = "generating",
) -> list[str]:
    """Greedy continuations of token-id `prompts`, in order, decoded without special tokens.

    Prompts are sorted by length and batched with left padding, so every row's next token sits
    in the last column and little time goes to padding; each row stops at end-of-text. Where the
    model has a fixed context, a prompt too long to leave room for `max_new_tokens` loses its
    first tokens (said on stderr; a method with its own rule fits its prompts before), and fewer
    tokens are generated where prompt and answer would not fit. A live bar (`description`) counts
    the answers while there are several batches.
    """
    if tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has no end-of-text token, so generation cannot stop.")
    if not prompts:
        return []
    limit = position_limit(model.config)
    room = prompt_room(limit, max_new_tokens)
    prompts, cut = fit_from_the_left(prompts, room)
    if cut:
        logger.warning(
            f"note: {cut} prompt(s) longer than {room} tokens lost their first tokens, so that prompt and "
            f"answer fit the model's {limit} positions."
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))
    batch_size = batch_size or len(prompts)
    answers = [""] * len(prompts)
    was_training, use_cache = model.training, model.config.use_cache
    model.eval()
    model.config.use_cache = True
    bar = progress_bar(len(prompts), description, unit="answer", batches=len(range(0, len(order), batch_size)))
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad(
                {"input_ids": [prompts[row] for row in rows]}, padding=True, padding_side="left", return_tensors="pt"
            )
            longest = batch["input_ids"].shape[1]
            output = model.generate(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                max_new_tokens=max_new_tokens if limit is None else max(1, min(max_new_tokens, limit - longest)),
                do_sample=False,
                num_beams=1,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=pad_id,
            )
            for position, row in enumerate(rows):
                continuation = output[position, longest:].tolist()
                if tokenizer.eos_token_id in continuation:
                    continuation = continuation[: continuation.index(tokenizer.eos_token_id)]
                answers[row] = tokenizer.decode(continuation, skip_special_tokens=True)
            bar.update(len(rows))
    finally:
        bar.close()
        model.train(was_training)
        model.config.use_cache = use_cache
    return answers
