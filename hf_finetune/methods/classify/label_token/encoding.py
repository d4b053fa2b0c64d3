"""Label-token encoding: `text + separator + label word`, loss on the label word only.

The causal LM keeps its LM head; each example becomes the text's tokens, the separator's tokens
and the label word's tokens. Only the label word's tokens carry targets (-100 everywhere else,
padding included), so the model learns to write the right label word after the separator.

Two equivalent ways to build the training data:
- `encode_label_token`: the project's own `Dataset.map` (token ids, truncation by tokens);
- `prompt_completion_dataset`: a prompt-completion dataset for TRL's `SFTTrainer` with
  `completion_only_loss` (the test suite checks both put targets at the same positions).
"""

from __future__ import annotations

import datasets

from hf_finetune.core.data.collate import IGNORE_INDEX
from hf_finetune.core.data.tokenize_cache import map_once

from .words import LabelWords, text_budget


def encode_label_token(
    splits: datasets.DatasetDict, tokenizer, label_words: LabelWords, max_length: int
) -> tuple[datasets.DatasetDict, int]:
    """Tokenize every split as `text + separator + label word` with targets on the label word only.

    Truncation shortens the text (at a character boundary), never the separator or the label
    word, so every example keeps its targets. Columns: input_ids, labels (token targets),
    class_id, prefix_length (text + separator tokens). Returns the splits and how many texts
    were truncated.
    """
    budget = text_budget(max_length, label_words)
    separator = list(label_words.separator_ids)

    def encode(batch):
        rows: dict[str, list] = {"input_ids": [], "labels": [], "class_id": [], "prefix_length": [], "truncated": []}
        all_ids = tokenizer(batch["text"], add_special_tokens=True)["input_ids"]
        for text, ids, label in zip(batch["text"], all_ids, batch["label"]):
            cut = truncated_text(tokenizer, text, budget) if len(ids) > budget else None
            if cut is not None:
                ids = tokenizer(cut, add_special_tokens=True)["input_ids"][:budget]
            prefix = ids + separator
            word = label_words.token_ids[label]
            rows["input_ids"].append(prefix + word)
            rows["labels"].append([IGNORE_INDEX] * len(prefix) + word)
            rows["class_id"].append(label)
            rows["prefix_length"].append(len(prefix))
            rows["truncated"].append(cut is not None)
        return rows

    columns = next(iter(splits.values())).column_names
    encoded = map_once(splits, encode, batched=True, remove_columns=columns, desc="tokenizing (label-token)")
    truncated = sum(sum(split["truncated"]) for split in encoded.values())
    return encoded.remove_columns("truncated"), truncated


def truncated_text(tokenizer, text: str, budget: int) -> str | None:
    """The text cut after at most `budget` tokens, at the end of a whole character; None if it fits.

    Byte-level tokenizers split some characters over several tokens: the cut steps back to
    the last token that ends a character, so the cut text tokenizes to the same tokens again.
    """
    budget -= tokenizer.num_special_tokens_to_add()
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    if len(offsets) <= budget:
        return None
    keep = budget
    while keep > 1 and offsets[keep][0] < offsets[keep - 1][1]:
        keep -= 1
    return text[: offsets[keep - 1][1]]


def prompt_completion_dataset(
    split: datasets.Dataset, tokenizer, label_words: LabelWords, max_length: int
) -> datasets.Dataset:
    """The same examples as a prompt-completion dataset for TRL's SFTTrainer.

    prompt = text (cut to the same token budget) + separator, completion = label word. The
    `text` column stays: TRL appends an end-of-text token to `text` when the dataset has one and
    to the completion otherwise, and an extra target after the label word is not this method.
    """
    budget = text_budget(max_length, label_words)

    def convert(batch):
        return {
            "prompt": [(truncated_text(tokenizer, text, budget) or text) + label_words.separator for text in batch["text"]],
            "completion": [label_words.words[label] for label in batch["label"]],
        }

    return split.map(convert, batched=True, desc="prompt-completion")
