"""Classify new texts with a label-token run: the label word with the highest score wins, and
its probability is the softmax over the label words' scores (the rest of the vocabulary aside),
divided by the run's temperature (--calibrate; 1 otherwise)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch

from hf_finetune.core.data.tokenize_cache import context_length
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import load_causal_lm_run

from ..head.predict import note_cut_texts
from .scoring import label_word_scores
from .words import LabelWords

LABEL_TOKEN_FILE = "label_token.json"
TEMPERATURE_KEY = "temperature"  # in LABEL_TOKEN_FILE; runs from before --calibrate have none
BATCH_SIZE = 32


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_token_ids(value) -> bool:
    return isinstance(value, list) and bool(value) and all(is_whole(token) and token >= 0 for token in value)


def read_label_token_settings(path: Path) -> tuple[LabelWords, int, float]:
    """The label words, the text budget (tokens of text read) and the temperature saved in a run's
    label_token.json, each checked for what predict needs: a file cut short or edited by hand is
    one sentence naming it and its key, not a traceback or a wrong probability further on."""

    def damaged(key: str, why: str) -> UserError:
        where = f"{path}, key '{key}'" if key else str(path)
        return UserError(f"{where}: {why}; the file was changed after training: restore it or train the run again.")

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        raise damaged("", f"cannot be read ({error.__class__.__name__})") from None
    if not isinstance(saved, dict):
        raise damaged("", f"holds a {type(saved).__name__}, not an object")
    words = saved.get("label_words")
    if not isinstance(words, list) or not all(isinstance(word, str) and word for word in words):
        raise damaged("label_words", f"{words!r} is not a list of label words")
    if len(words) < 2 or len(set(words)) != len(words):
        raise damaged("label_words", f"{words!r} are not two or more different words (one per class)")
    token_ids = saved.get("label_token_ids")
    if not isinstance(token_ids, list) or len(token_ids) != len(words) or not all(map(is_token_ids, token_ids)):
        raise damaged("label_token_ids", f"{token_ids!r} is not one non-empty list of token ids per label word")
    if len({tuple(ids) for ids in token_ids}) != len(token_ids):
        raise damaged("label_token_ids", f"{token_ids!r}: two label words have the same tokens")
    separator, separator_ids = saved.get("separator"), saved.get("separator_ids")
    if not isinstance(separator, str) or not separator:
        raise damaged("separator", f"{separator!r} is not a non-empty text")
    if not is_token_ids(separator_ids):
        raise damaged("separator_ids", f"{separator_ids!r} is not a non-empty list of token ids")
    label_words = LabelWords(words, token_ids, separator, separator_ids)
    max_length = saved.get("max_length")
    room = len(separator_ids) + label_words.longest
    if not is_whole(max_length) or max_length <= room:
        raise damaged("max_length", f"{max_length!r} is not a whole number of tokens above the {room} that the "
                                    f"separator and the longest label word take")  # fmt: skip
    temperature = saved.get(TEMPERATURE_KEY, 1.0)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not math.isfinite(temperature) \
            or temperature <= 0:  # fmt: skip
        raise damaged(TEMPERATURE_KEY, f"{temperature!r} is not a positive finite number (the scores are divided by it)")
    return label_words, max_length - room, float(temperature)


def check_token_ids(path: Path, label_words: LabelWords, vocabulary: int) -> None:
    """Every saved token id is one of the model's `vocabulary` token ids."""
    for key, rows in (("label_token_ids", label_words.token_ids), ("separator_ids", [label_words.separator_ids])):
        outside = [token for ids in rows for token in ids if token >= vocabulary]
        if outside:
            raise UserError(f"{path}, key '{key}': token id {outside[0]} is outside the model's {vocabulary} tokens; "
                            f"the file was changed after training or belongs to another model: restore it or train "
                            f"the run again.")  # fmt: skip


def label_token_predictor(
    run_dir: Path, settings_dir: Path | None = None
) -> Callable[[list[str]], list[tuple[str, float]]]:
    """`run_dir`'s model with the label words of `settings_dir` (default: the same folder; a
    checkpoint's are in its run folder)."""
    settings = (settings_dir or run_dir) / LABEL_TOKEN_FILE
    label_words, budget, temperature = read_label_token_settings(settings)
    # A checkpoint of a finished run: the run's temperature was fitted to the final model, not to it.
    temperature = temperature if settings_dir in (None, run_dir) else 1.0
    tokenizer = load_tokenizer(str(run_dir))
    model = load_causal_lm_run(run_dir).eval()  # a full model or a LoRA adapter run
    check_token_ids(settings, label_words, model.get_input_embeddings().num_embeddings)
    # A run trained with a --max_length beyond the model's positions read no more than these.
    budget = max(1, min(budget, context_length(tokenizer, model.config) - len(label_words.separator_ids)
                        - label_words.longest))  # fmt: skip

    @torch.inference_mode()
    def predict(texts: list[str]) -> list[tuple[str, float]]:
        answers, cut = [], 0
        for start in range(0, len(texts), BATCH_SIZE):
            ids_of = tokenizer(texts[start : start + BATCH_SIZE], add_special_tokens=True, verbose=False)["input_ids"]
            cut += sum(len(ids) > budget for ids in ids_of)
            prefixes = [ids[:budget] + label_words.separator_ids for ids in ids_of]
            width = max(len(prefix) for prefix in prefixes)
            input_ids = torch.tensor([prefix + [tokenizer.pad_token_id] * (width - len(prefix)) for prefix in prefixes])
            lengths = torch.tensor([len(prefix) for prefix in prefixes])
            scores, _ = label_word_scores(model, input_ids, lengths, label_words, tokenizer.pad_token_id)
            best = (scores / temperature).softmax(-1).max(-1)
            answers += [(label_words.words[int(i)], float(p)) for p, i in zip(best.values, best.indices)]
        note_cut_texts(cut, budget)
        return answers

    return predict
