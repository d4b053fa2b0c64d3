"""Batches padded to their own longest example, padding masked by position.

The pad token is often the end-of-text token, which must stay a target where it ends a
response or separates a label word: padding is marked by the attention mask and by label
IGNORE_INDEX, never recognised by its token id. transformers' `DataCollatorForSeq2Seq` does
exactly this for causal LMs too (it pads `labels` with `label_pad_token_id`).
"""

from __future__ import annotations

from transformers import DataCollatorForSeq2Seq

# The label Trainer, PyTorch's cross-entropy and TRL all skip.
IGNORE_INDEX = -100


def padding_collator(tokenizer, pad_to_multiple_of: int | None = None) -> DataCollatorForSeq2Seq:
    """Pads input_ids/attention_mask with the tokenizer (on its padding side) and labels with -100.

    Other integer columns (a class id, a prefix length) become tensors as they are."""
    return DataCollatorForSeq2Seq(
        tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, pad_to_multiple_of=pad_to_multiple_of
    )
