"""Head method encoding: token ids for a sequence-classification head; no padding here (the
collator pads each batch)."""

from __future__ import annotations

import datasets

from hf_finetune.core.data.tokenize_cache import map_once


def encode_for_head(splits: datasets.DatasetDict, tokenizer, max_length: int) -> tuple[datasets.DatasetDict, int]:
    """Tokenize `text` for a sequence-classification head; no padding here (the collator pads).

    Returns the encoded splits (keeping `text` for reports) and how many texts were truncated.
    """

    def encode(batch):
        input_ids = tokenizer(batch["text"], add_special_tokens=True)["input_ids"]
        return {
            "input_ids": [ids[:max_length] for ids in input_ids],
            "attention_mask": [[1] * min(len(ids), max_length) for ids in input_ids],
            "labels": batch["label"],
            "truncated": [len(ids) > max_length for ids in input_ids],
        }

    encoded = map_once(splits, encode, batched=True, remove_columns=["label"], desc="tokenizing")
    truncated = sum(sum(split["truncated"]) for split in encoded.values())
    return encoded.remove_columns("truncated"), truncated
