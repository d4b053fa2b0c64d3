"""Layer 3, encoding: one function per method, applied with `Dataset.map(batched=True)`."""

from __future__ import annotations

import datasets


def context_length(tokenizer, model_config) -> int:
    """The longest input the model takes (tokenizers often report a huge sentinel instead)."""
    limits = [
        getattr(model_config, name, None)
        for name in ("n_positions", "max_position_embeddings", "seq_length")
    ]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)
    known = [limit for limit in limits if limit]
    return min(known) if known else 2048


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

    encoded = splits.map(encode, batched=True, remove_columns=["label"], desc="tokenizing")
    truncated = sum(sum(split["truncated"]) for split in encoded.values())
    return encoded.remove_columns("truncated"), truncated
