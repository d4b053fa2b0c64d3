"""Classify new texts with a head-method run: the class with the highest probability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from hf_finetune.core.data.tokenize_cache import context_length
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import load_sequence_classifier
from hf_finetune.core.report.console import logger

BATCH_SIZE = 32


def label_names(run_dir: Path, classes: int) -> list[str]:
    """The class names the run saved in its config.json (id2label), one per class of the model's
    `classes` outputs: a file edited after training is one sentence naming it and the key, not a
    made-up label (LABEL_0) or a number printed as one."""
    path = run_dir / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8")).get("id2label")  # parsed before the model loaded
    if not isinstance(saved, dict) or classes < 2 or set(saved) != {str(index) for index in range(classes)} or \
            not all(isinstance(name, str) and name.strip() for name in saved.values()):  # fmt: skip
        raise UserError(f"{path}, key 'id2label': {saved!r} is not a name for each of the model's {classes} classes "
                        f"(0 to {classes - 1}); the file was changed after training: restore it or train the run "
                        f"again.")  # fmt: skip
    return [saved[str(index)] for index in range(classes)]


def head_predictor(run_dir: Path) -> Callable[[list[str]], list[tuple[str, float]]]:
    tokenizer = load_tokenizer(str(run_dir))
    model = load_sequence_classifier(run_dir).eval()  # a full model or a LoRA adapter run
    labels = label_names(run_dir, model.config.num_labels)
    limit = context_length(tokenizer, model.config)

    @torch.inference_mode()
    def predict(texts: list[str]) -> list[tuple[str, float]]:
        answers, cut = [], 0
        for start in range(0, len(texts), BATCH_SIZE):
            ids = tokenizer(texts[start : start + BATCH_SIZE], verbose=False)["input_ids"]  # cut below, with a note
            cut += sum(len(row) > limit for row in ids)
            batch = tokenizer.pad({"input_ids": [row[:limit] for row in ids]}, padding=True, return_tensors="pt")
            probabilities = model(**batch).logits.float().softmax(-1)
            best = probabilities.max(-1)
            answers += [(labels[int(i)], float(p)) for p, i in zip(best.values, best.indices)]
        note_cut_texts(cut, limit)
        return answers

    return predict


def note_cut_texts(count: int, limit: int) -> None:
    """Say on stderr that `count` texts were longer than the `limit` tokens a prediction reads."""
    if count:
        logger.warning(f"note: {count} text(s) longer than the {limit} tokens the model reads were classified by "
                       f"their first {limit} tokens.")  # fmt: skip
