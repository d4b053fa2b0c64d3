"""Before anything loads: checks and settings every run needs, so a bad flag or a finished run
in the output folder costs seconds, not a loaded model."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.device import accelerator_available
from hf_finetune.core.model.precision import check_precision, precision_for_hardware
from hf_finetune.core.report.files import FINISHED_MARKER
from hf_finetune.core.report.hub import check_hub_push, hub_token_moved_out
from hf_finetune.core.run.ownership import SERIES_KINDS, folder_owner


def guard_output_dir(output_dir: str, overwrite: bool, series: str | Path | None = None,
                     model: str | None = None, resuming: bool = False) -> None:  # fmt: skip
    """Refuse a run's folder that another command or series owns, the folder of the model the run
    loads (`model`), and the results of a finished run unless asked to replace them (run_lock has
    already refused a folder the run could not write in). `series`: the folder of the series this run
    belongs to, whose runs write into its folders."""
    refuse_the_models_folder(output_dir, model)
    owner = folder_owner(output_dir)
    if owner is None:
        checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda path: path.stat().st_mtime)
        if checkpoints and not resuming and not overwrite:  # training from the start would replace them
            raise UserError(f"--output_dir: {output_dir} holds the checkpoints of an unfinished run (newest "
                            f"{checkpoints[-1].name}); continue it with --resume_from_checkpoint auto, pass "
                            f"--overwrite_output_dir to train from the start, or choose another folder.")  # fmt: skip
        return
    if owner.kind == "inside run":
        raise UserError(f"--output_dir: {output_dir} is {owner.describe()}; a run there would mix its files with "
                        f"theirs (a checkpoint's weights replaced under its optimizer state): choose a folder "
                        f"outside it.")  # fmt: skip
    if owner.kind == "model":
        raise UserError(f"--output_dir: {output_dir} holds {owner.describe()}; a run there would replace it: "
                        f"choose another folder.")  # fmt: skip
    if owner.kind == "series run" and (series is None or Path(series).absolute() != owner.folder):
        raise UserError(f"--output_dir: {output_dir} is {owner.describe()}; rerun that series' command (it keeps "
                        f"the runs that finished and trains the others), or choose another folder.")  # fmt: skip
    if owner.kind == "series":
        raise UserError(f"--output_dir: {output_dir} holds {owner.describe()}; a single run there would replace the "
                        f"series' config.yaml and plots: choose another folder.")  # fmt: skip
    if owner.kind == "compare":
        raise UserError(f"--output_dir: {output_dir} holds {owner.describe()}; choose another folder.")
    if (Path(output_dir) / FINISHED_MARKER).exists() and not overwrite:
        raise UserError(
            f"--output_dir: {output_dir} holds a finished run ({FINISHED_MARKER}); pass --overwrite_output_dir "
            f"to replace it, or choose another folder."
        )


def refuse_the_models_folder(output_dir: str, model: str | None) -> None:
    if model and Path(model).is_dir() and Path(model).resolve() == Path(output_dir).resolve():
        raise UserError(f"--output_dir: {output_dir} is the model this run loads (--model_name_or_path); saving "
                        f"there would replace it: choose another folder.")  # fmt: skip


def guard_series_dir(output_dir: str, overwrite: bool, kind: str, model: str | None = None) -> None:
    """A series' folder (`kind`: "seeds" or "chat --compare") is its own: empty, or a series of the
    same kind (a --seeds series then keeps the runs that finished with the same flags); never the
    folder of the model its runs load (`model`)."""
    refuse_the_models_folder(output_dir, model)
    owner = folder_owner(output_dir)
    if owner is None:
        return
    if owner.kind == "series" and owner.series_kind == kind:
        if kind != "seeds":  # a --seeds series keeps its finished seeds; a --compare series is replaced whole
            if (Path(output_dir) / FINISHED_MARKER).exists() and not overwrite:
                raise UserError(f"--output_dir: {output_dir} holds a finished run ({FINISHED_MARKER}); pass "
                                f"--overwrite_output_dir to replace it, or choose another folder.")  # fmt: skip
        return
    where = "is" if owner.kind == "inside run" else "holds"
    raise UserError(f"--output_dir: {output_dir} {where} {owner.describe()}; {SERIES_KINDS[kind]} needs a folder of "
                    f"its own: choose another folder.")  # fmt: skip


def settle_training_args(
    args: TrainingArguments,
    skip_nonfinite_batches: bool = False,
    method_needs: dict[str, object] | None = None,
    given_flags: frozenset[str] | None = None,
) -> dict[str, int]:
    """The one place a run changes its TrainingArguments, before its config snapshot: the settings
    every run wants (`run_settings`), the intervals of a short run (`short_run_intervals`), the
    method's needs (`Method.required_training_arguments`) and the Hub token moved out of them; then
    the checks that need the settled values. Returns the intervals it scaled, for the plan."""
    intervals = short_run_intervals(args, given_flags)
    changes = {**run_settings(args, skip_nonfinite_batches), **intervals, **precision_for_hardware(args),
               **(method_needs or {}), **hub_token_moved_out(args)}  # fmt: skip
    for name, value in changes.items():
        setattr(args, name, value)
    check_precision(args)
    check_report_to(args)
    check_fsdp_device()
    check_hub_push(args)
    return intervals


# A run of --max_steps N logs its training loss at least LOSS_POINTS times (free: the loss is there)
# and, from EVALUATED_RUN steps on, evaluates at least EVALUATIONS times (with --eval_strategy
# steps), so that its plots draw curves, not dots; a shorter run is a smoke test, evaluated at its end.
LOSS_POINTS, EVALUATIONS, EVALUATED_RUN = 20, 4, 20


def short_run_intervals(args: TrainingArguments, given_flags: frozenset[str] | None) -> dict[str, int]:
    """--logging_steps and --eval_steps shortened to the run's length when the run is shorter than
    the recipe's intervals allow curves for and the user gave neither (`given_flags`: None when the
    run did not come from a command line: nothing changes)."""
    if given_flags is None or args.max_steps <= 0:
        return {}
    changes = {}
    if "logging_steps" not in given_flags and args.logging_strategy == "steps" and args.logging_steps >= 1:
        steps = max(1, args.max_steps // LOSS_POINTS)
        if steps < args.logging_steps:
            changes["logging_steps"] = steps
    eval_steps = args.eval_steps if args.eval_steps is not None else args.logging_steps
    if ("eval_steps" not in given_flags and args.eval_strategy == "steps" and eval_steps >= 1
            and args.max_steps >= EVALUATED_RUN):  # fmt: skip
        steps = max(1, args.max_steps // EVALUATIONS)
        if steps < eval_steps:
            changes["eval_steps"] = steps
    return changes


def intervals_plan_line(intervals: dict[str, int], args: TrainingArguments) -> dict[str, str]:
    """The plan's line saying which intervals a short run scaled (none: no line)."""
    if not intervals:
        return {}
    said = []  # only what was scaled: a smoke run's evaluation interval stays the recipe's
    if "logging_steps" in intervals:
        said.append(f"loss logged every {args.logging_steps:g} step(s)")
    if "eval_steps" in intervals:
        said.append(f"evaluation every {args.eval_steps:g} step(s)")
    flags = " / ".join(f"--{name}" for name in intervals)
    return {"curves": f"{', '.join(said)}: scaled to the run's {args.max_steps} steps, so that the plots draw "
                      f"curves ({flags} to choose)"}


def run_settings(args: TrainingArguments, skip_nonfinite_batches: bool) -> dict[str, object]:
    """TrainingArguments values every recipe wants whatever the user passed."""
    settings: dict[str, object] = {
        # Without skipping, a NaN loss shows as NaN in the logs; with it, the skipped batch's loss must
        # not stay in Trainer's running total (every later logged loss and train_loss would read NaN).
        "logging_nan_inf_filter": skip_nonfinite_batches,
    }
    if args.gradient_checkpointing and args.gradient_checkpointing_kwargs is None:
        # Re-entrant checkpointing gives frozen-input blocks no gradients (stack-notes pitfall 7).
        # transformers 5 reads activation_checkpointing_kwargs; gradient_* is its deprecated mirror.
        settings["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
        if hasattr(args, "activation_checkpointing_kwargs"):
            settings["activation_checkpointing_kwargs"] = settings["gradient_checkpointing_kwargs"]
    if not torch.cuda.is_available():
        settings["dataloader_pin_memory"] = False  # pinning only helps copies to an accelerator
    if args.ddp_find_unused_parameters is None:
        # DDP only tracks parameters that require grad, and every trainable one (any --trainable
        # policy, LoRA) takes part in each forward: searching the graph for unused ones is waste.
        settings["ddp_find_unused_parameters"] = False
    return settings


# accelerate (1.15) switches FSDP on for accelerator devices only. Tests that make it honour FSDP
# on CPU, to exercise the FSDP2 code paths without a GPU, turn this off.
FSDP_NEEDS_ACCELERATOR = True


def check_fsdp_device() -> None:
    """FSDP or DeepSpeed asked for on a machine without GPU: refused, not silently trained as DDP."""
    requested = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    if requested and FSDP_NEEDS_ACCELERATOR and not accelerator_available():
        raise UserError(
            "FSDP (an accelerate config with distributed_type: FSDP) needs GPUs: without one, accelerate would "
            "silently train as plain DDP, or fail loading the model on rank 1; use accelerate_configs/cpu.yaml here."
        )
    # The same trap with DeepSpeed (accelerate 1.16 keeps CPU workers on DDP; docs/distributed-precision.md).
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true") and not accelerator_available():
        raise UserError(
            "DeepSpeed (an accelerate config with distributed_type: DEEPSPEED) needs GPUs here: without one, "
            "accelerate would silently train as plain DDP; use accelerate_configs/cpu.yaml on this machine."
        )


# Packages whose pip name differs from the --report_to value.
REPORT_TO_PACKAGES = {"tensorboard": "tensorboard", "azure_ml": "azureml-core", "neptune": "neptune", "flyte": "flytekit"}


def check_report_to(args: TrainingArguments) -> None:
    """Fail before any data or model is loaded when a --report_to backend cannot run.

    Trainer checks only when it is built, after data and model loading, with a traceback."""
    from transformers.integrations import get_reporting_integration_callbacks

    for name in args.report_to or []:
        try:
            [callback] = get_reporting_integration_callbacks([name])
        except ValueError:
            raise UserError(
                f"--report_to: '{name}' is not a logging backend Trainer offers; use tensorboard, trackio, wandb, "
                f"another Trainer integration, or none."
            ) from None
        try:
            callback()  # the integrations check their package here
        except (RuntimeError, ImportError):
            package = REPORT_TO_PACKAGES.get(name, name)
            raise UserError(
                f"--report_to {name}: the {package} package is not installed; `pip install {package}`, or drop the flag."
            ) from None
