"""The LM head only where a label is: a causal LM's loss over its target tokens.

A small causal LM's head (hidden x vocabulary) is its most expensive matrix: about 31% of
GPT-2's forward FLOPs per position, 46% of Bloom-560m's (a 250880-word vocabulary). A plain
Trainer computes logits at every position, then throws away those whose label is -100:
padding, and the prompt or the human turns when they are masked. Here the model gets
`logits_to_keep` as a boolean mask of the positions that predict a target (transformers 5:
the head runs on those positions only), and the loss is the same cross-entropy the model
would compute. The label-token, instruction and chat methods train through this Trainer.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from .training import OrderedEvalTrainer

IGNORE_INDEX = -100


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, length) mask of the positions whose next token is a target (the causal shift)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def target_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens, and how many there are."""
    keep = target_positions(labels)
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets, reduction="sum"), int(targets.numel())


def supports_target_logits(model) -> bool:
    """Whether the model's forward takes `logits_to_keep` (a PEFT wrapper passes it on)."""
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


class TargetLossTrainer(OrderedEvalTrainer):
    """A Trainer whose loss needs LM-head logits only where labels are not -100.

    Used while training, and in evaluation when only the loss is wanted
    (`prediction_loss_only`); otherwise, or for a model without `logits_to_keep`, Trainer's own
    loss with full logits.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Trainer counts the targets of a batch (num_items_in_batch) after the causal shift only
        # when it recognises the model's loss as a causal-LM loss, which it does not for GPT-2 or
        # Bloom (transformers 5.23): it would count one extra target per row that starts with a
        # label, and every loss would come out a little too small. This loss does shift.
        self._loss_shifts_labels = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        wanted = model.training or self.args.prediction_loss_only
        if not wanted or "labels" not in inputs or not supports_target_logits(self.accelerator.unwrap_model(model)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss_sum, count = target_loss(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            # As Trainer does for a model's own causal-LM loss: num_items_in_batch counts the target
            # tokens of the whole accumulated batch on every process, Trainer then skips its division
            # by the accumulation steps, and DDP averages the processes' gradients.
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = loss_sum / max(count, 1)
        return (loss, {"loss": loss}) if return_outputs else loss
