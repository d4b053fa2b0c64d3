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

from .scoring import label_word_scores
from .words import LabelWords, text_budget

LABEL_TOKEN_FILE = "label_token.json"
TEMPERATURE_KEY = "temperature"  # in LABEL_TOKEN_FILE; runs from before --calibrate have none
BATCH_SIZE = 32


def label_token_predictor(run_dir: Path) -> Callable[[list[str]], list[tuple[str, float]]]:
    saved = json.loads((run_dir / LABEL_TOKEN_FILE).read_text(encoding="utf-8"))
    label_words = LabelWords.from_dict(saved)
    budget = text_budget(saved["max_length"], label_words)
    temperature = saved.get(TEMPERATURE_KEY, 1.0)
    tokenizer = load_tokenizer(str(run_dir))
    model = load_causal_lm_run(run_dir).eval()  # a full model or a LoRA adapter run

    @torch.inference_mode()
    def predict(texts: list[str]) -> list[tuple[str, float]]:
        answers = []
        for start in range(0, len(texts), BATCH_SIZE):
            prefixes = [
                ids[:budget] + label_words.separator_ids
                for ids in tokenizer(texts[start : start + BATCH_SIZE], add_special_tokens=True)["input_ids"]
            ]
            width = max(len(prefix) for prefix in prefixes)
            input_ids = torch.tensor([prefix + [tokenizer.pad_token_id] * (width - len(prefix)) for prefix in prefixes])
            lengths = torch.tensor([len(prefix) for prefix in prefixes])
            scores, _ = label_word_scores(model, input_ids, lengths, label_words, tokenizer.pad_token_id)
            best = (scores / temperature).softmax(-1).max(-1)
            answers += [(label_words.words[int(i)], float(p)) for p, i in zip(best.values, best.indices)]
        return answers

    return predict
