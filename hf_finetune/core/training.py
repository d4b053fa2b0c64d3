"""A run that dies must cost minutes, not the run.

- `--resume_from_checkpoint auto|PATH` continues from the latest checkpoint in --output_dir;
- SIGTERM or Ctrl-C writes a checkpoint at the end of the current step, says where, and exits
  non-zero (143 for SIGTERM, 130 for Ctrl-C);
- a non-finite loss stops training before the optimizer step spoils the weights, names the
  step and keeps the last good checkpoint (`--skip_nonfinite_batches` skips such batches
  instead, and logs each one).

The run skeleton (run.py) trains every method through `train_reliably(trainer, training_args)`;
the callbacks it adds are in callbacks.py, the staged final save in saving.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from .callbacks import EXIT_CODES, NonFiniteGuard, NonFiniteLoss, PreemptionCallback
from .errors import UserError


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
