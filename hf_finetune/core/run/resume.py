"""A run resumed from a checkpoint ends as the uninterrupted run ends.

Trainer (transformers 5.25) leaves two differences that `train_reliably` removes:
- a run that resumes from the checkpoint of its last step (`--max_steps`: a kill after the last
  save, during the final evaluation) trains one step more before it sees it is done; here it
  trains none (`StopAtTheLastStep`), and a checkpoint past `--max_steps` is refused;
- its `train_loss` is the mean over the steps since the resume; here it is the mean over all
  steps, from the sum each checkpoint keeps (`TrainingLossSoFar`, in its trainer_state.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState

from hf_finetune.core.errors import UserError
from hf_finetune.core.run.checkpoints import TRAINER_STATE


def saved_state(checkpoint: str | Path) -> dict:
    try:
        state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # resolve_resume has checked that it parses
    return state if isinstance(state, dict) else {}


def check_checkpoint_step(checkpoint: str | None, args: TrainingArguments) -> None:
    """Refuse a checkpoint saved after more steps than this run's --max_steps."""
    if checkpoint is None or args.max_steps <= 0:
        return
    step = saved_state(checkpoint).get("global_step")
    if isinstance(step, int) and step > args.max_steps:
        raise UserError(f"--resume_from_checkpoint: {checkpoint} was saved at step {step}, past this run's --max_steps "
                        f"{args.max_steps}; raise --max_steps to train on from it, or resume from an earlier "
                        f"checkpoint.")  # fmt: skip


class AlreadyTrained(Exception):
    """The resumed checkpoint is the run's last step: nothing is left to train."""


class StopAtTheLastStep(TrainerCallback):
    """Trainer checks whether training is done only after a step: a run resumed at its last step would
    train one more. Raised once the checkpoint is loaded (weights, optimizer, state), before any step."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise AlreadyTrained


class TrainingLossSoFar(TrainerCallback, ExportableState):
    """Each checkpoint records the sum of the training losses of the steps before it."""

    def __init__(self, trainer: Trainer | None = None, before: float = 0.0):
        self.trainer, self.before = trainer, before

    def state(self) -> dict:
        return {"args": {}, "attributes": {"loss_sum": self.loss_sum()}}

    def loss_sum(self) -> float:
        trainer = self.trainer
        if trainer is None or not hasattr(trainer, "_tr_loss"):  # asked before training began
            return self.before
        # Trainer's own running figures: losses logged so far, and those since the last log.
        return self.before + trainer._total_loss_scalar + float(trainer._tr_loss.item())


def loss_sum_at(checkpoint: str | None) -> float | None:
    """The loss sum a checkpoint recorded (None: no checkpoint, or one saved before this record)."""
    if checkpoint is None:
        return None
    record = (saved_state(checkpoint).get("stateful_callbacks") or {}).get(TrainingLossSoFar.__name__)
    value = (record or {}).get("attributes", {}).get("loss_sum") if isinstance(record, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def step_at(checkpoint: str | None) -> int:
    step = saved_state(checkpoint).get("global_step") if checkpoint else 0
    return step if isinstance(step, int) else 0


def mean_training_loss(trainer: Trainer, checkpoint: str | None, trained_loss: float) -> float:
    """The mean training loss over every step of the run: Trainer's `trained_loss` covers only the
    steps since `checkpoint`."""
    before = loss_sum_at(checkpoint)
    steps = trainer.state.global_step
    if before is None or steps <= 0:
        return trained_loss
    since = steps - step_at(checkpoint)
    return (before + trained_loss * since) / steps
