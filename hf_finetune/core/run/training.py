"""A run that dies must cost minutes, not the run.

- `--resume_from_checkpoint auto|PATH` continues from the newest complete checkpoint in
  --output_dir, saying which newer ones it skipped and why (a save cut off by a kill);
- a full disk while a checkpoint is written stops with one sentence, removes that unfinished
  checkpoint and keeps the earlier ones;
- SIGTERM or Ctrl-C writes a checkpoint at the end of the current step, says where, and exits
  non-zero (143 for SIGTERM, 130 for Ctrl-C);
- a non-finite loss stops training before the optimizer step spoils the weights, names the
  step and keeps the last good checkpoint (`--skip_nonfinite_batches` skips such batches
  instead, and logs each one).

The run skeleton (run.py) trains every method through `train_reliably(trainer, training_args)`;
the callbacks it adds are in callbacks.py, what makes a checkpoint complete in checkpoints.py,
the staged final save in saving.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.callbacks import EXIT_CODES, NonFiniteGuard, NonFiniteLoss, PreemptionCallback
from hf_finetune.core.report.console import logger
from hf_finetune.core.run.checkpoints import (
    TRAINER_STATE,
    checkpoint_problem,
    newest_complete_checkpoint,
    remove_unfinished_checkpoint,
    write_failure,
)


class TrainingStopped(UserError):
    """Training ended early on purpose (preemption, non-finite loss); `exit_code` says how."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def resolve_resume(args: TrainingArguments) -> str | None:
    """Turn `--resume_from_checkpoint auto|PATH` into a complete checkpoint folder (or None: start fresh).

    The run skeleton calls it before anything loads and hands the answer to `train_reliably`."""
    value = args.resume_from_checkpoint
    if value in (None, "", "false", "False", "no"):
        return None
    if value in ("auto", "true", "True", "latest"):
        folder = Path(args.output_dir)
        latest, skipped = newest_complete_checkpoint(folder)
        for reason in skipped:
            logger.info(f"resume: skipping {reason}")
        if latest is None:
            logger.info(f"resume: no complete checkpoint in {folder} yet, starting from the beginning")
        else:
            logger.info(f"resume: continuing from {latest}")
        return latest
    checkpoint = Path(value)
    if not checkpoint.is_dir() or not (checkpoint.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") or
                                       (checkpoint / TRAINER_STATE).exists()):  # fmt: skip
        why = "no such folder" if not checkpoint.is_dir() else f"no {TRAINER_STATE}"
        raise UserError(f"--resume_from_checkpoint: {value} is not a checkpoint folder ({why}); pass a checkpoint-N "
                        f"folder of an earlier run, or auto.")  # fmt: skip
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        latest, _ = newest_complete_checkpoint(checkpoint.parent)
        instead = f"pass {latest}, the newest complete one, or auto" if latest else "start without the flag"
        raise UserError(f"--resume_from_checkpoint: {value} is not a complete checkpoint ({problem}); {instead}.")
    return value


def train_reliably(trainer: Trainer, checkpoint: str | None = None, skip_nonfinite_batches: bool = False):
    """`trainer.train()` from `checkpoint` (see `resolve_resume`), with preemption and non-finite loss
    handling."""
    args = trainer.args
    preemption = PreemptionCallback()
    guard = NonFiniteGuard(skip_nonfinite_batches).reading_norm_of(trainer)  # no second pass over the gradients
    trainer.add_callback(preemption)
    trainer.add_callback(guard)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except NonFiniteLoss as error:
        last, _ = newest_complete_checkpoint(args.output_dir)
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been saved yet"
        raise TrainingStopped(
            f"training stopped: the loss became NaN or infinite at step {error.step} (try a lower "
            f"--learning_rate, or --skip_nonfinite_batches); {kept}.",
            exit_code=3,
        ) from None
    except Exception as error:
        cause = write_failure(error, args.output_dir)
        if cause is None:
            raise
        raise checkpoint_write_failed(trainer, args, cause, error) from None
    finally:
        preemption.restore()
    if preemption.received is not None:
        last, _ = newest_complete_checkpoint(args.output_dir)
        name = signal.Signals(preemption.received).name
        raise TrainingStopped(
            f"training interrupted by {name} at step {trainer.state.global_step}; checkpoint saved in {last}; "
            f"continue with --resume_from_checkpoint auto.",
            exit_code=EXIT_CODES[preemption.received],
        )
    if guard.skipped:
        logger.info(f"skipped {len(guard.skipped)} batch(es) with a non-finite loss: steps {guard.skipped}")
    return result


def checkpoint_write_failed(trainer: Trainer, args: TrainingArguments, cause: str, error: Exception) -> UserError:
    """The sentence for a disk that filled up during training; the unfinished checkpoint is removed."""
    step = trainer.state.global_step
    unfinished = remove_unfinished_checkpoint(args.output_dir, step) if args.should_save else None
    what = unfinished or getattr(error, "filename", None) or "a file"
    last, _ = newest_complete_checkpoint(args.output_dir)
    kept = (f"{last} is the last complete checkpoint: once there is room, continue with --resume_from_checkpoint auto"
            if last else "no complete checkpoint was saved before it: once there is room, start again")  # fmt: skip
    return UserError(f"training stopped at step {step} while writing {what} in {args.output_dir}: {cause}; {kept}.")
