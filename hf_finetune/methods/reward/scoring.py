"""Scores of a reward model: one number per sequence, in batches, as training computes them (the
sequence classifier reads its score at the last real token)."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def sequence_scores(model, pad_token_id: int, sequences: list[list[int]], batch_size: int) -> np.ndarray:
    """The model's score of each token sequence (right padding, as the trainer's collator pads);
    the model is put back in the mode it was in."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores = []
    try:
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            longest = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), longest), pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, ids in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention_mask[row, : len(ids)] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            scores.append(logits[:, 0].float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(scores) if scores else np.zeros(0)


def pair_scores(model, pad_token_id: int, split, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(chosen scores, rejected scores) of an encoded split (chosen_ids, rejected_ids)."""
    count = len(split)
    scores = sequence_scores(model, pad_token_id, [*split["chosen_ids"], *split["rejected_ids"]], batch_size)
    return scores[:count], scores[count:]
