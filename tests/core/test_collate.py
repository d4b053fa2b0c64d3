"""The one collator every method pads with: each batch to its own longest example, masked by position."""

from __future__ import annotations

from hf_finetune.core.data.collate import IGNORE_INDEX, padding_collator
from hf_finetune.core.model.loading import load_tokenizer


def test_pads_each_batch_to_its_own_longest_example_and_masks_by_position(gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    eos = tokenizer.eos_token_id
    assert tokenizer.pad_token_id == eos  # GPT-2: padding looks like end-of-text
    batch = padding_collator(tokenizer)(
        [{"input_ids": [5, eos], "labels": [5, eos]}, {"input_ids": [7], "labels": [IGNORE_INDEX]}]
    )
    assert batch["input_ids"].tolist() == [[5, eos], [7, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["labels"].tolist() == [[5, eos], [IGNORE_INDEX, IGNORE_INDEX]]


def test_keeps_integer_columns_and_pads_on_the_left_for_generation(gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir), padding_side="left")
    batch = padding_collator(tokenizer)(
        [{"input_ids": [5, 6], "labels": [5, 6], "class_id": 1}, {"input_ids": [7], "labels": [7], "class_id": 0}]
    )
    assert batch["input_ids"][1].tolist() == [tokenizer.pad_token_id, 7]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 7]
    assert batch["class_id"].tolist() == [1, 0]
