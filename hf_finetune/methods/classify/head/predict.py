"""Classify new texts with a head-method run: the class with the highest probability."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import load_sequence_classifier

BATCH_SIZE = 32


def head_predictor(run_dir: Path) -> Callable[[list[str]], list[tuple[str, float]]]:
    tokenizer = load_tokenizer(str(run_dir))
    model = load_sequence_classifier(run_dir).eval()  # a full model or a LoRA adapter run
    labels = model.config.id2label

    @torch.inference_mode()
    def predict(texts: list[str]) -> list[tuple[str, float]]:
        answers = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = tokenizer(texts[start : start + BATCH_SIZE], padding=True, truncation=True, return_tensors="pt")
            probabilities = model(**batch).logits.float().softmax(-1)
            best = probabilities.max(-1)
            answers += [(labels[int(i)], float(p)) for p, i in zip(best.values, best.indices)]
        return answers

    return predict
