"""The label-token method, data side: `text + separator + label word`, loss on the label word only.

The causal LM keeps its LM head; each example becomes the text's tokens, the separator's tokens
and the label word's tokens. Only the label word's tokens carry targets (-100 everywhere else,
padding included), so the model learns to write the right label word after the separator.

Two equivalent ways to build the training data:
- `encode_label_token`: the project's own `Dataset.map` (token ids, truncation by tokens);
- `prompt_completion_dataset`: a prompt-completion dataset for TRL's `SFTTrainer` with
  `completion_only_loss` (the test suite checks both put targets at the same positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch

from .encoding import map_once
from .errors import UserError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class LabelWords:
    """The word written for each class, its token ids, and the separator between text and word."""

    words: list[str]
    token_ids: list[list[int]]
    separator: str
    separator_ids: list[int]

    @property
    def longest(self) -> int:
        return max(len(ids) for ids in self.token_ids)

    @property
    def single_token(self) -> bool:
        return all(len(ids) == 1 for ids in self.token_ids)

    def to_dict(self) -> dict:
        return {
            "label_words": self.words,
            "label_token_ids": self.token_ids,
            "separator": self.separator,
            "separator_ids": self.separator_ids,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "LabelWords":
        return cls(data["label_words"], data["label_token_ids"], data["separator"], data["separator_ids"])


def resolve_label_words(
    tokenizer, label_names: list[str], flag: str | None = None, separator: str | None = None
) -> LabelWords:
    """Label words from `--label_words` (comma-separated, in class order) or the class names.

    A word may tokenize to several tokens; two words with the same token sequence could never be
    told apart, so they are rejected. The default separator is the end-of-text token, as in the
    classic recipe (it also keeps the text's last token from merging with the label word).
    """
    if flag is not None:
        words = [word.strip() for word in flag.split(",")]
        where = f"--label_words '{flag}'"
    else:
        words = list(label_names)
        where = "the class names (pass --label_words to choose others)"
    if any(not word for word in words):
        raise UserError(f"{where}: a label word is empty.")
    if len(words) != len(label_names):
        raise UserError(
            f"{where}: {len(words)} label words for {len(label_names)} classes ({', '.join(label_names)}); "
            f"give one word per class, in class order."
        )
    token_ids = [tokenizer(word, add_special_tokens=False)["input_ids"] for word in words]
    seen: dict[tuple[int, ...], str] = {}
    for word, ids in zip(words, token_ids):
        if not ids:
            raise UserError(f"{where}: the label word '{word}' tokenizes to no token.")
        if tuple(ids) in seen:
            raise UserError(
                f"{where}: the label words '{seen[tuple(ids)]}' and '{word}' tokenize to the same tokens {ids}, "
                f"so they cannot be told apart."
            )
        seen[tuple(ids)] = word
    separator = tokenizer.eos_token if separator is None else separator
    if not separator:
        raise UserError("--separator: the separator is empty and the tokenizer has no end-of-text token.")
    separator_ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
    for word, ids in zip(words, token_ids):
        # Otherwise the tokens trained on are not the ones the text "separator + word" gives.
        if tokenizer(separator + word, add_special_tokens=False)["input_ids"] != separator_ids + ids:
            raise UserError(
                f"--separator {separator!r}: followed by the label word '{word}' its tokens merge with the word's; "
                f"end the separator differently (e.g. with ':' or a newline) or start the word with a space."
            )
    return LabelWords(words, token_ids, separator, separator_ids)


def text_budget(max_length: int, label_words: LabelWords) -> int:
    """How many text tokens fit: the separator and the longest label word always fit whole."""
    budget = max_length - len(label_words.separator_ids) - label_words.longest
    if budget < 1:
        raise UserError(
            f"--max_length: {max_length} tokens leave no room for the text after the separator "
            f"({len(label_words.separator_ids)} tokens) and the longest label word ({label_words.longest} tokens)."
        )
    return budget


def encode_label_token(
    splits: datasets.DatasetDict, tokenizer, label_words: LabelWords, max_length: int
) -> tuple[datasets.DatasetDict, int]:
    """Tokenize every split as `text + separator + label word` with targets on the label word only.

    Truncation shortens the text (at a character boundary), never the separator or the label
    word, so every example keeps its targets. Columns: input_ids, labels (token targets), label
    (class id), prefix_length (text + separator tokens) and text. Returns the splits and how
    many texts were truncated.
    """
    budget = text_budget(max_length, label_words)
    separator = list(label_words.separator_ids)

    def encode(batch):
        rows: dict[str, list] = {"input_ids": [], "labels": [], "prefix_length": [], "truncated": []}
        all_ids = tokenizer(batch["text"], add_special_tokens=True)["input_ids"]
        for text, ids, label in zip(batch["text"], all_ids, batch["label"]):
            cut = truncated_text(tokenizer, text, budget) if len(ids) > budget else None
            if cut is not None:
                ids = tokenizer(cut, add_special_tokens=True)["input_ids"][:budget]
            prefix = ids + separator
            word = label_words.token_ids[label]
            rows["input_ids"].append(prefix + word)
            rows["labels"].append([IGNORE_INDEX] * len(prefix) + word)
            rows["prefix_length"].append(len(prefix))
            rows["truncated"].append(cut is not None)
        return rows

    encoded = map_once(splits, encode, batched=True, desc="tokenizing (label-token)")
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


class LabelTokenCollator:
    """Right-pads a batch; padding gets attention 0 and target -100 (masked by position, since
    the pad token is often the end-of-text token, which may also be the separator)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"])
            attention_mask[row, :length] = 1
            labels[row, :length] = torch.as_tensor(feature["labels"])
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if "label" in features[0]:
            batch["label"] = torch.tensor([feature["label"] for feature in features], dtype=torch.long)
            batch["prefix_length"] = torch.tensor([feature["prefix_length"] for feature in features])
        return batch
