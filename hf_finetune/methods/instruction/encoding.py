"""Token ids and labels for instruction tuning (core.collate pads them per batch).

One example is `request + response header + response + end-of-text`. Labels copy the ids
(the model shifts them itself), so the end-of-text token after the response is a target and
the model learns to stop; `mask_prompt` sets the request and header labels to -100.
Padding is added by the collator and masked by position, never by token id: the pad token
is often the end-of-text token, which must stay a target where it ends a response.
"""

from __future__ import annotations

import datasets

from hf_finetune.core.data.collate import IGNORE_INDEX
from hf_finetune.core.data.tokenize_cache import map_once
from hf_finetune.core.errors import UserError
from hf_finetune.methods.text.prompt import prompt_ids


def encode_example(
    tokenizer, entry: dict, max_length: int, mask_prompt: bool
) -> tuple[list[int], list[int], str] | None:
    """(input_ids, labels, what happened) or None when even the bare response does not fit.

    Too long: the request is cut from its end first (the response header stays); the response
    is never cut, because a cut response would teach the model to stop mid-answer.
    """
    request, header = prompt_ids(tokenizer, entry["instruction"], entry.get("input") or "")
    response = tokenizer(entry["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    status = "kept"
    overflow = len(request) + len(header) + len(response) - max_length
    if overflow > 0:
        if overflow >= len(request):
            return None
        request = request[: len(request) - overflow]
        status = "truncated"
    prompt = request + header
    input_ids = prompt + response
    labels = ([IGNORE_INDEX] * len(prompt) if mask_prompt else list(prompt)) + list(response)
    return input_ids, labels, status


def encode_instructions(
    splits: datasets.DatasetDict, tokenizer, max_length: int, mask_prompt: bool, at_model_limit: bool = False
) -> tuple[datasets.DatasetDict, dict[str, dict[str, int]]]:
    """Encode every split; returns the encoded splits (rows that fit, with their `index` in the
    split) and per split how many examples were truncated and dropped. `at_model_limit`: `max_length`
    is the model's position limit, so the way out when nothing fits is not a larger one."""
    if tokenizer.eos_token_id is None:
        raise UserError("--model_name_or_path: the tokenizer has no end-of-text token, so responses cannot end.")

    def encode(batch, indices):
        out = {"input_ids": [], "labels": [], "index": [], "status": []}
        for position, index in enumerate(indices):
            entry = {name: batch[name][position] for name in ("instruction", "input", "output")}
            encoded = encode_example(tokenizer, entry, max_length, mask_prompt)
            status = "dropped" if encoded is None else encoded[2]
            out["status"].append(status)
            out["input_ids"].append([] if encoded is None else encoded[0])
            out["labels"].append([] if encoded is None else encoded[1])
            out["index"].append(index)
        return out

    encoded = map_once(
        splits, encode, batched=True, with_indices=True, remove_columns=splits["train"].column_names, desc="tokenizing"
    )
    counts = {
        name: {status: split["status"].count(status) for status in ("truncated", "dropped")}
        for name, split in encoded.items()
    }
    encoded = encoded.filter(
        lambda status: status != "dropped", input_columns="status", keep_in_memory=True
    ).remove_columns("status")
    if len(encoded["train"]) == 0:
        if at_model_limit:
            raise UserError(f"--dataset: every training response is too long for the model's {max_length} positions, "
                            f"even with its request cut; shorten the responses, or use a model with a longer context.")  # fmt: skip
        raise UserError(
            f"--max_length: {max_length} tokens is too short for every training response; raise it."
        )
    return encoded, counts
