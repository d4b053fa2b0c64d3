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

import hashlib
import json
import signal
from pathlib import Path

import yaml
from safetensors import SafetensorError, safe_open
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.callbacks import (
    EXIT_CODES,
    CheckpointAfterEpochEnd,
    NonFiniteGuard,
    NonFiniteLoss,
    PreemptionCallback,
)
from hf_finetune.core.report.console import logger
from hf_finetune.core.run.checkpoints import (
    TRAINER_STATE,
    checkpoint_problem,
    newest_complete_checkpoint,
    remove_unfinished_checkpoint,
    write_failure,
)
from hf_finetune.core.run.lock import raise_if_terminated
from hf_finetune.core.run.resume import (
    AlreadyTrained,
    StopAtTheLastStep,
    TrainingLossSoFar,
    check_checkpoint_step,
    loss_sum_at,
    mean_training_loss,
)


class TrainingStopped(UserError):
    """Training ended early on purpose (preemption, non-finite loss); `exit_code` says how."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


NOT_RESUMING = (None, "", "false", "False", "no")  # --resume_from_checkpoint values that start from the beginning


def resolve_resume(args: TrainingArguments) -> str | None:
    """Turn `--resume_from_checkpoint auto|PATH` into a complete checkpoint folder (or None: start fresh).

    The run skeleton calls it before anything loads and hands the answer to `train_reliably`."""
    value = args.resume_from_checkpoint
    if value in NOT_RESUMING:
        return None
    if value in ("auto", "true", "True", "latest"):
        folder = Path(args.output_dir)
        latest, skipped = newest_complete_checkpoint(folder)
        for reason in skipped:
            logger.info(f"resume: skipping {reason}")
        if latest is None:
            logger.info(f"resume: no complete checkpoint in {folder} yet, starting from the beginning")
        else:
            check_checkpoint_step(latest, args)
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
    check_checkpoint_step(value, args)
    return value


class RunIdentity(TrainerCallback, ExportableState):
    """What every checkpoint records of the run that saved it (in its trainer_state.json), so that a
    run resumes only from a checkpoint of its own kind: the method, the model class and its
    trainable parameters (names and shapes: the optimizer's state is theirs), and the flags it
    trains with (its config.yaml), so that a resumed run is the run its config.yaml trains again."""

    def __init__(self, identity: dict, flags: dict | None = None):
        self.identity = identity
        self.flags = flags  # the run's config.yaml, which a resumed run must keep (None: an older checkpoint)

    def state(self) -> dict:
        return {"args": {"identity": self.identity, "flags": self.flags}, "attributes": {}}

    def on_train_begin(self, args, state, control, **kwargs):
        # A state resumed from a checkpoint saved without this callback lacks its entry, and Trainer's
        # save (transformers 5.25, _save_checkpoint) looks it up before writing it.
        state.stateful_callbacks.setdefault(type(self).__name__, self.state())


def run_identity(method: str, model) -> dict:
    """RunIdentity's record of a run: `method` (its description), the model's class, its trainable parameters."""
    trainable = sorted(f"{name}:{tuple(parameter.shape)}" for name, parameter in model.named_parameters()
                       if parameter.requires_grad)  # fmt: skip
    digest = hashlib.sha256("\n".join(trainable).encode()).hexdigest()[:16]
    return {"method": method, "model": model.__class__.__name__, "trainable_parameters": digest}


IDENTITY_WORDS = {"method": "the method", "model": "the model class",
                  "trainable_parameters": "the trainable parameters"}  # fmt: skip


def check_checkpoint_fits(checkpoint: str | None, identity: dict, model, config: dict | None = None) -> None:
    """Refuse a checkpoint saved by a run of another method or model, or with other trainable
    parameters, before its weights and optimizer are loaded (they would fail to load with a
    traceback, or load and silently train on as another run). `config`: this run's config.yaml,
    for a checkpoint saved before RunIdentity whose run folder holds its own."""
    if checkpoint is None:
        return
    try:
        state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # resolve_resume has checked that it parses
    recorded = ((state.get("stateful_callbacks") or {}).get(RunIdentity.__name__) or {}).get("args", {})
    saved = recorded.get("identity")
    if isinstance(saved, dict):
        differs = [key for key in identity if saved.get(key) != identity[key]]
        if differs:
            what = "; ".join(f"{IDENTITY_WORDS[key]}: {saved.get(key)} there, {identity[key]} here" for key in differs)
            raise checkpoint_of_another_run(checkpoint, what)
        check_same_training_flags(checkpoint, recorded.get("flags"), config)
        return
    # A checkpoint from before RunIdentity: its weights, and the flags its run folder recorded.
    problem = weights_mismatch(Path(checkpoint), model) or other_commands_flags(Path(checkpoint), config or {})
    if problem:
        raise checkpoint_of_another_run(checkpoint, problem)


# Flags a resumed run may change: how it logs, reports, saves and evaluates, and what it does after
# training; not what it trains. Any other change and config.yaml would not train the run again.
RESUME_MAY_CHANGE = frozenset({
    "logging_strategy", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_level",
    "log_level_replica", "log_on_each_node", "disable_tqdm", "report_to", "run_name", "project", "trackio_space_id",
    "save_strategy", "save_steps", "save_total_limit", "save_only_model", "save_on_each_node",
    "eval_strategy", "eval_steps", "eval_delay", "per_device_eval_batch_size", "eval_accumulation_steps",
    "eval_on_start", "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
    "push_to_hub", "hub_model_id", "hub_strategy", "hub_private_repo", "hub_always_push", "hub_revision",
    "ddp_timeout", "traceback", "train_eval_samples", "final_train_sample", "max_new_tokens",
    "sample_max_new_tokens", "generation_batch_size", "report_examples", "answers_every_epoch", "judge_url",
    "judge_model",
})  # fmt: skip


def check_same_training_flags(checkpoint: str, saved: dict | None, config: dict | None) -> None:
    """Refuse to resume with a flag that changes what trains (the learning rate, the data, the
    steps, ...): the run would be neither the one its checkpoint began nor one its config.yaml trains."""
    if not isinstance(saved, dict) or not config:
        return
    now = json.loads(json.dumps(config, default=str))  # as the checkpoint's JSON holds it
    changed = [key for key in now if key in saved and key not in RESUME_MAY_CHANGE and saved[key] != now[key]]
    if changed:
        key = changed[0]
        more = f" (and {len(changed) - 1} more: {', '.join('--' + name for name in changed[1:4])})" if len(changed) > 1 else ""
        raise UserError(
            f"--resume_from_checkpoint: {checkpoint} was saved by a run with --{key} {saved[key]!r}, and this command "
            f"gives {now[key]!r}{more}; a run resumes with the flags it began with (its config.yaml then trains it "
            f"again): drop the change, or train anew into another --output_dir (or with --overwrite_output_dir)."
        )


def other_commands_flags(checkpoint: Path, config: dict) -> str | None:
    """Why the config.yaml of a checkpoint's run folder is another command's or --method's (None: it
    is not, or there is none to read)."""
    try:
        theirs = yaml.safe_load((checkpoint.parent / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(theirs, dict) or not config:
        return None
    # Flags of another command that were set (the classify command's unset --label_words or its
    # --method head are no other command's than the spam recipe's).
    foreign = [key for key, value in theirs.items() if key not in config and value is not None and key != "method"]
    if foreign:
        return f"its run's config.yaml holds flags this command has not: {', '.join(foreign[:3])}"
    if "method" in theirs and "method" in config and theirs["method"] != config["method"]:
        return f"its run's --method is {theirs['method']}, this run's {config['method']}"
    return None


def weights_mismatch(checkpoint: Path, model) -> str | None:
    """Why the full-model weights saved in `checkpoint` cannot be this model's (None: they can, or
    the checkpoint holds an adapter, which is not compared here)."""
    file = checkpoint / "model.safetensors"
    if not file.is_file() or hasattr(model, "peft_config"):
        return None
    try:
        with safe_open(file, framework="pt") as weights:
            saved = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError):
        return None  # resolve_resume names a damaged file
    ours = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    for name, shape in saved.items():
        if name not in ours:
            return f"its weights hold {name}, which {model.__class__.__name__} has not"
        if ours[name] != shape:
            return f"its {name} has the shape {list(shape)}, this model's {list(ours[name])}"
    missing = [name for name, parameter in model.named_parameters() if parameter.requires_grad and name not in saved]
    if missing:
        return f"it holds no {missing[0]}, which this run trains"
    return None


def checkpoint_of_another_run(checkpoint: str, what: str) -> UserError:
    return UserError(f"--resume_from_checkpoint: {checkpoint} was saved by another kind of run ({what}); resume "
                     f"from a checkpoint of this same command and flags, or train into another --output_dir "
                     f"without the flag.")  # fmt: skip


def train_reliably(trainer: Trainer, checkpoint: str | None = None, skip_nonfinite_batches: bool = False,
                   identity: dict | None = None, flags: dict | None = None):  # fmt: skip
    """`trainer.train()` from `checkpoint` (see `resolve_resume`), with preemption and non-finite loss
    handling; each checkpoint records `identity` (see `run_identity`) and `flags` (the config.yaml)."""
    raise_if_terminated()
    args = trainer.args
    preemption = PreemptionCallback()
    guard = NonFiniteGuard(skip_nonfinite_batches).reading_norm_of(trainer)  # no second pass over the gradients
    if identity is not None:
        trainer.add_callback(RunIdentity(identity, json.loads(json.dumps(flags, default=str)) if flags else None))
    trainer.add_callback(preemption)
    trainer.add_callback(guard)
    trainer.add_callback(TrainingLossSoFar(trainer, loss_sum_at(checkpoint) or 0.0))
    trainer.add_callback(StopAtTheLastStep())
    trainer.add_callback(CheckpointAfterEpochEnd())  # last: it sees every request to save
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except AlreadyTrained:
        logger.info(f"resume: {checkpoint} is the run's last step; nothing is left to train")
        trainer.callback_handler.remove_callback(StopAtTheLastStep)
        result = TrainOutput(trainer.state.global_step, 0.0, {})
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
    loss = mean_training_loss(trainer, checkpoint, result.training_loss)  # over every step, not only the resumed ones
    return TrainOutput(result.global_step, loss, {**result.metrics, "train_loss": loss})


def checkpoint_write_failed(trainer: Trainer, args: TrainingArguments, cause: str, error: Exception) -> UserError:
    """The sentence for a disk that filled up during training; the unfinished checkpoint is removed."""
    step = trainer.state.global_step
    unfinished = remove_unfinished_checkpoint(args.output_dir, step) if args.should_save else None
    what = unfinished or getattr(error, "filename", None) or "a file"
    last, _ = newest_complete_checkpoint(args.output_dir)
    kept = (f"{last} is the last complete checkpoint: once there is room, continue with --resume_from_checkpoint auto"
            if last else "no complete checkpoint was saved before it: once there is room, start again")  # fmt: skip
    return UserError(f"training stopped at step {step} while writing {what} in {args.output_dir}: {cause}; {kept}.")
