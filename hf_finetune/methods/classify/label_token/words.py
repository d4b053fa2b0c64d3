"""Label words: the word the model writes for each class, its token ids, and the separator
between the text and the word."""

from __future__ import annotations

from dataclasses import dataclass

from hf_finetune.core.errors import UserError


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
    if separator == "":
        raise UserError(
            "--separator: an empty separator lets the text run into the label word; pass one (e.g. ' =>'), "
            "or leave the flag out for the end-of-text token."
        )
    separator = tokenizer.eos_token if separator is None else separator
    if not separator:
        raise UserError(
            "--separator: the tokenizer has no end-of-text token to separate text and label word; pass one."
        )
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
