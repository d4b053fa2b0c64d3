"""Trainer callbacks every method's run uses: evaluation at each epoch's end, labelled progress
bars, a checkpoint and a clean stop on SIGTERM/Ctrl-C, and a guard against non-finite gradients."""

from __future__ import annotations

import signal

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import has_length

from hf_finetune.core.report.console import logger

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class EvaluateAtEpochEnd(TrainerCallback):
    """Evaluate at the end of every epoch as well as every `eval_steps` steps, once per step: Trainer
    has already evaluated when the epoch's last step is an `eval_steps` multiple or the run's last step.
    A run stopped inside an epoch (a signal) is not evaluated there: its resumed run goes on with that epoch."""

    def __init__(self):
        self.evaluated_at_step: int | None = None

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluated_at_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if args.eval_strategy != "no" and self.evaluated_at_step != state.global_step and epoch_is_whole(state):
            control.should_evaluate = True
        return control


class CheckpointAfterEpochEnd(TrainerCallback):
    """A checkpoint due at an epoch's last step is written at that epoch's end, after what runs there.

    Trainer saves a step's checkpoint as soon as the step ends, then calls `on_epoch_end` and runs
    the epoch-end evaluation (EvaluateAtEpochEnd's, or `--eval_strategy epoch`). That evaluation
    draws random numbers (every DataLoader iterator draws its base seed from torch's generator) and
    logs its figures, so a checkpoint written before it holds an older random state and history: a
    run resumed from it would start the next epoch with other random numbers than the uninterrupted
    run (other batches, other dropout) and without that evaluation in its history. Deferring the save
    to the epoch's end makes every checkpoint hold the state the next step starts from. It must be
    the last callback, so that it sees every callback's request to save (a signal's included)."""

    def __init__(self):
        self.deferred = False

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save and epoch_is_whole(state):
            control.should_save = False
            self.deferred = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.deferred:
            control.should_save = True
            self.deferred = False
        return control


def epoch_is_whole(state) -> bool:
    """Whether the step that just ended is an epoch's last: Trainer sets `state.epoch` to
    epoch + (batch + 1) / batches_per_epoch, a whole number only there."""
    return state.epoch is not None and float(state.epoch).is_integer()


class LabelledProgressCallback(ProgressCallback):
    """Trainer's progress bars, with the evaluation or prediction bar saying what it runs through
    (`label`, set by the trainer before each loop, e.g. "evaluating validation"), gone once done."""

    label: str | None = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if state.is_world_process_zero and has_length(eval_dataloader) and self.prediction_bar is None:
            # As Trainer opens it, with the label; Trainer's own call below then counts the step.
            # Not left on screen: an evaluation leaves its one line, a prediction the summary.
            self.prediction_bar = tqdm(total=len(eval_dataloader), leave=False, dynamic_ncols=True, desc=self.label)
        super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)


class PreemptionCallback(TrainerCallback):
    """On SIGTERM or SIGINT, save a checkpoint at the end of the current step and stop."""

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        self.received = signum

    def on_train_begin(self, args, state, control, **kwargs):
        for signum in EXIT_CODES:
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals to whoever owns them
                pass

    def on_step_end(self, args, state, control, **kwargs):
        if _any_process(self.received is not None, args):
            self.received = self.received or signal.SIGTERM
            control.should_save = True
            control.should_training_stop = True
        return control

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()


class NonFiniteGuard(TrainerCallback):
    """Before each optimizer step, check the gradients of the trainable parameters.

    A NaN/inf loss makes NaN/inf gradients; catching them here keeps the weights (and any
    checkpoint saved later) clean. Stops with the step number, or zeroes the gradients of that
    batch when skipping is on.

    Trainer measures the gradients' norm before this check (for clipping and its logs); once
    `reading_norm_of(trainer)` lets the guard see that norm, a finite norm settles the step with one
    look at one number, and only a non-finite one makes the guard look at the gradients themselves
    (a norm too large for float32 with finite gradients is not a NaN). Without it, the guard takes
    the largest absolute gradient itself: a second pass over every gradient, each step.
    """

    def __init__(self, skip: bool):
        self.skip = skip
        self.skipped: list[int] = []
        self.model = None
        self.grad_norm = None  # Trainer's norm of this step's gradients, when reading_norm_of is on

    def reading_norm_of(self, trainer) -> NonFiniteGuard:
        """Read the gradient norm `trainer` computes each step (Trainer._get_grad_norm, transformers 5)."""
        measure = getattr(trainer, "_get_grad_norm", None)
        if measure is None:
            return self

        def measured(model, grad_norm=None):
            self.grad_norm = measure(model, grad_norm=grad_norm)
            return self.grad_norm

        trainer._get_grad_norm = measured
        return self

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        norm, self.grad_norm = self.grad_norm, None
        if norm is not None and bool(torch.isfinite(torch.as_tensor(norm))):
            return control
        gradients = [p.grad for p in self.model.parameters() if p.requires_grad and p.grad is not None]
        if not gradients or all_finite(gradients):
            return control
        step = state.global_step + 1
        if not self.skip:
            raise NonFiniteLoss(step)
        for gradient in gradients:
            gradient.zero_()
        self.skipped.append(step)
        logger.warning(f"warning: step {step} had a non-finite loss or gradient; its batch was skipped")
        return control


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every value is finite, with one wait for the device (not one per tensor): the largest
    absolute value of all of them, NaN or inf as soon as one value is."""
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors, norm_type=float("inf"))))


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


def _any_process(flag: bool, args: TrainingArguments) -> bool:
    """True when `flag` is set on any process, so every process saves and stops together."""
    if args.world_size <= 1 or not torch.distributed.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    if torch.distributed.get_backend() == "nccl":
        value = value.cuda()
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())
