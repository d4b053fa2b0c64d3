"""Classify new texts with a label-token run: the label word with the highest score wins, and
its probability is the softmax over the label words' scores (the rest of the vocabulary aside),
divided by the run's temperature (--calibrate; 1 otherwise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import load_causal_lm_run

from ..head.predict import note_cut_texts
from .scoring import label_word_scores
from .words import LabelWords, text_budget

LABEL_TOKEN_FILE = "label_token.json"
TEMPERATURE_KEY = "temperature"  # in LABEL_TOKEN_FILE; runs from before --calibrate have none
BATCH_SIZE = 32


def label_token_predictor(
    run_dir: Path, settings_dir: Path | None = None
) -> Callable[[list[str]], list[tuple[str, float]]]:
    """`run_dir`'s model with the label words of `settings_dir` (default: the same folder; a
    checkpoint's are in its run folder)."""
    saved = json.loads(((settings_dir or run_dir) / LABEL_TOKEN_FILE).read_text(encoding="utf-8"))
    label_words = LabelWords.from_dict(saved)
    budget = text_budget(saved["max_length"], label_words)
    # A checkpoint of a finished run: the run's temperature was fitted to the final model, not to it.
    temperature = saved.get(TEMPERATURE_KEY, 1.0) if settings_dir in (None, run_dir) else 1.0
    tokenizer = load_tokenizer(str(run_dir))
    model = load_causal_lm_run(run_dir).eval()  # a full model or a LoRA adapter run

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
