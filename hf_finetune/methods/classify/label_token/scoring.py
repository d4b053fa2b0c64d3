"""Label-token scoring: loss and scores without full-vocabulary logits everywhere.

Training computes the LM head at the label-word positions only (core.trainers.TargetLossTrainer);
evaluation also passes the model a boolean `logits_to_keep` mask and keeps per example only the
label words' scores and the unconstrained best next token, never vocabulary x length logits.
"""

from __future__ import annotations

import numpy as np
import torch

from hf_finetune.core.model.trainers import TargetLossTrainer
from hf_finetune.methods.classify.report import classification_metrics

from .words import LabelWords


def label_word_scores(
    model, input_ids: torch.Tensor, prefix_length: torch.Tensor, label_words: LabelWords, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score every label word after each prefix (text + separator, right-padded in `input_ids`).

    Returns (batch, classes) summed log-probabilities of each word's tokens, and the
    unconstrained most likely next token after the prefix (for format adherence). Single-token
    words need one pass over the prefixes; a multi-token word needs one pass with it appended.
    """
    batch = input_ids.shape[0]
    device = input_ids.device
    prefix_length = prefix_length.to(device)
    scores = torch.empty((batch, len(label_words.words)), dtype=torch.float32, device=device)
    words = [[ids[0]] for ids in label_words.token_ids] if label_words.single_token else label_words.token_ids
    best_next = None
    for index, word in enumerate(words):
        word_ids = torch.as_tensor(word, device=device)
        width = int(prefix_length.max()) + len(word)
        positions = torch.arange(width, device=device)[None, :]
        offset = positions - prefix_length[:, None]  # position inside the word, negative in the prefix
        in_prefix = offset < 0
        in_word = (offset >= 0) & (offset < len(word))
        sequence = torch.full((batch, width), pad_token_id, dtype=torch.long, device=device)
        prefix_part = input_ids[:, : min(width, input_ids.shape[1])]
        sequence[:, : prefix_part.shape[1]] = torch.where(
            in_prefix[:, : prefix_part.shape[1]], prefix_part, pad_token_id
        )
        sequence = torch.where(in_word, word_ids[offset.clamp(0, len(word) - 1)], sequence)
        keep = (offset >= -1) & (offset < len(word) - 1)
        logits = model(
            input_ids=sequence, attention_mask=(in_prefix | in_word).long(), logits_to_keep=keep, use_cache=False
        ).logits
        log_probs = logits.float().log_softmax(-1).view(batch, len(word), -1)
        if best_next is None:
            best_next = log_probs[:, 0].argmax(-1)
        if label_words.single_token:
            first_tokens = torch.as_tensor([ids[0] for ids in label_words.token_ids], device=device)
            return log_probs[:, 0, first_tokens], best_next
        scores[:, index] = log_probs.gather(-1, word_ids.expand(batch, -1)[..., None]).sum(dim=(1, 2))
    return scores, best_next


def scored_sequences(encoded, label_words: LabelWords) -> list[list[int]]:
    """Every sequence the model sees in this method: each example as it trains (text + separator +
    its label word) and as `label_word_scores` scores it (the prefix + each word it appends)."""
    appended = [[ids[0]] for ids in label_words.token_ids[:1]] if label_words.single_token else label_words.token_ids
    sequences = []
    for split in encoded.values():
        for ids, prefix_length in zip(split["input_ids"], split["prefix_length"]):
            sequences.append(ids)
            sequences.extend(ids[:prefix_length] + word for word in appended)
    return sequences


class LabelTokenTrainer(TargetLossTrainer):
    """Trainer for the label-token method: loss on label-word tokens only, head on those
    positions only; evaluation returns (label-word scores, best next token) per example."""

    def __init__(self, *args, label_words: LabelWords, pad_token_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_words = label_words
        self.pad_token_id = pad_token_id

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            scores, best_next = label_word_scores(
                model, inputs["input_ids"], inputs["prefix_length"], self.label_words, self.pad_token_id
            )
        classes = inputs["class_id"]
        word_lengths = torch.as_tensor([len(ids) for ids in self.label_words.token_ids], device=classes.device)
        loss = -scores.gather(1, classes[:, None]).sum() / word_lengths[classes].sum()
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), (scores.detach(), best_next), classes


def format_adherence(best_next: np.ndarray, label_words: LabelWords) -> float:
    """Share of examples whose unconstrained next token starts one of the label words."""
    first_tokens = [ids[0] for ids in label_words.token_ids]
    return float(np.isin(np.asarray(best_next), first_tokens).mean())


def label_token_metrics(prediction, label_words: LabelWords, label_names: list[str]) -> dict:
    scores, best_next = prediction.predictions
    metrics = classification_metrics(prediction.label_ids, np.asarray(scores).argmax(-1), label_names)
    metrics.pop("confusion_matrix")
    metrics["format_adherence"] = format_adherence(best_next, label_words)
    return metrics
