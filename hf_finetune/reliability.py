"""A run that dies must cost minutes, not the run.

- `--resume_from_checkpoint auto|PATH` continues from the latest checkpoint in --output_dir;
- SIGTERM or Ctrl-C writes a checkpoint at the end of the current step, says where, and exits
  non-zero (143 for SIGTERM, 130 for Ctrl-C);
- a non-finite loss stops training before the optimizer step spoils the weights, names the
  step and keeps the last good checkpoint (`--skip_nonfinite_batches` skips such batches
  instead, and logs each one);
- the final model is written beside its place and moved in file by file, so a crash leaves
  the old files or the new ones.

Every method trains through `train_reliably(trainer, training_args)`.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .errors import UserError

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class TrainingStopped(UserError):
    """Training ended early on purpose (preemption, non-finite loss); `exit_code` says how."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def resolve_resume(args: TrainingArguments) -> str | None:
    """Turn `--resume_from_checkpoint auto|PATH` into a checkpoint folder (or None: start fresh)."""
    value = args.resume_from_checkpoint
    if value in (None, "", "false", "False", "no"):
        return None
    if value in ("auto", "true", "True", "latest"):
        folder = Path(args.output_dir)
        latest = get_last_checkpoint(str(folder)) if folder.is_dir() else None
        if latest is None and args.should_log:
            print(f"resume: no checkpoint in {folder} yet, starting from the beginning", flush=True)
        return latest
    if not (Path(value) / "trainer_state.json").is_file():
        raise UserError(f"--resume_from_checkpoint: {value} is not a checkpoint folder (no trainer_state.json).")
    return value


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
    """

    def __init__(self, skip: bool):
        self.skip = skip
        self.skipped: list[int] = []
        self.model = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        gradients = [p.grad for p in self.model.parameters() if p.requires_grad and p.grad is not None]
        finite = all(torch.isfinite(g).all() for g in gradients)
        if finite:
            return control
        step = state.global_step + 1
        if not self.skip:
            raise NonFiniteLoss(step)
        for gradient in gradients:
            gradient.zero_()
        self.skipped.append(step)
        if args.should_log:
            print(f"warning: step {step} had a non-finite loss or gradient; its batch was skipped", flush=True)
        return control


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


def train_reliably(trainer: Trainer, args: TrainingArguments, skip_nonfinite_batches: bool = False):
    """`trainer.train()` with resume, preemption and non-finite loss handling."""
    args.logging_nan_inf_filter = False  # show a NaN loss as NaN in the logs
    checkpoint = resolve_resume(args)
    preemption = PreemptionCallback()
    guard = NonFiniteGuard(skip_nonfinite_batches)
    trainer.add_callback(preemption)
    trainer.add_callback(guard)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except NonFiniteLoss as error:
        last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been saved yet"
        raise TrainingStopped(
            f"training stopped: the loss became NaN or infinite at step {error.step} (try a lower "
            f"--learning_rate, or --skip_nonfinite_batches); {kept}.",
            exit_code=3,
        ) from None
    finally:
        preemption.restore()
    if preemption.received is not None:
        last = get_last_checkpoint(args.output_dir)
        name = signal.Signals(preemption.received).name
        raise TrainingStopped(
            f"training interrupted by {name} at step {trainer.state.global_step}; checkpoint saved in {last}; "
            f"continue with --resume_from_checkpoint auto.",
            exit_code=EXIT_CODES[preemption.received],
        )
    if guard.skipped and args.should_log:
        print(f"skipped {len(guard.skipped)} batch(es) with a non-finite loss: steps {guard.skipped}", flush=True)
    return result


def save_final_model(trainer: Trainer, output_dir: str) -> None:
    """`trainer.save_model` into a staging folder, then move each file into place atomically.

    Every process calls this (FSDP/DeepSpeed gather weights collectively); the main process moves.
    """
    staging = Path(output_dir) / ".final-model.partial"
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        for item in staging.iterdir():
            target = Path(output_dir) / item.name
            if item.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                item.rename(target)
            else:
                os.replace(item, target)
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
