"""A Trainer that projects onto the vocabulary only at the positions that carry loss.

The LM head is a large share of a small causal LM's compute (about 46% of Bloom-560m's forward
FLOPs: a 250880-word vocabulary), and a plain Trainer computes logits at every position, then
throws away those whose label is -100. Here the model gets `logits_to_keep` as a boolean mask
of the positions that predict a target, so masking the human text also saves its logits.
The loss is the same mean cross-entropy over target tokens that the model would compute.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import Trainer

from .chat_encoding import IGNORE_INDEX


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the positions whose next token is a target (the causal shift)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def target_logits_loss(model, inputs: dict, num_items_in_batch=None) -> tuple[torch.Tensor, object]:
    labels = inputs["labels"]
    keep = target_positions(labels)
    model_inputs = {key: value for key, value in inputs.items() if key != "labels"}
    outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
    total = F.cross_entropy(outputs.logits.float().reshape(-1, outputs.logits.shape[-1]), targets, reduction="sum")
    divisor = num_items_in_batch if num_items_in_batch is not None else max(targets.numel(), 1)
    return total / divisor, outputs


def supports_target_logits(model) -> bool:
    # A PEFT model passes extra keywords on to the model it wraps.
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


class TargetLogitsTrainer(Trainer):
    """`Trainer` whose training loss needs logits only where labels are not -100."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation keeps the full logits that metrics may want
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = target_logits_loss(model, inputs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # As Trainer does: num_items_in_batch counts every process's tokens, and DDP averages gradients.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss
