"""Layer 5, training: what every method shares around `transformers.Trainer`."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler

from .arguments import accelerator_available
from .errors import UserError
from .modeling import is_sequence_classifier
from .precision import check_precision, describe_precision
from .results import FINISHED_MARKER


class EvaluateAtEpochEnd(TrainerCallback):
    """Evaluate at the end of every epoch as well as every `eval_steps` steps."""

    def on_epoch_end(self, args, state, control, **kwargs):
        if args.eval_strategy != "no":
            control.should_evaluate = True
        return control


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose order depends only on (seed, epoch), as accelerate's seedable
    sampler does for random batches, so a run resumed mid-epoch sees the same order."""

    def __init__(self, *args, seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class OrderedEvalTrainer(Trainer):
    """A Trainer whose evaluation keeps dataset order even when training groups by length,
    so predictions can be matched back to their texts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if is_sequence_classifier(self.model):
            # Its forward takes **kwargs, so Trainer assumes its loss is already divided by the label
            # count of the whole accumulated batch on every process (num_items_in_batch); it is a
            # plain batch mean. Trainer would then sum gradient-accumulation steps instead of
            # averaging them, and multiply loss and gradients by the number of processes.
            self.model_accepts_loss_kwargs = False

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            sampler = EpochSeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)
        return sampler

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or self.args.world_size > 1:
            return None  # distributed: accelerate shards batches in order and gathers them back in order
        return SequentialSampler(eval_dataset)


def guard_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuse to replace the results of a finished run unless asked to."""
    finished = Path(output_dir) / FINISHED_MARKER
    if finished.exists() and not overwrite:
        raise UserError(
            f"--output_dir: {output_dir} holds a finished run ({FINISHED_MARKER}); pass --overwrite_output_dir "
            f"to replace it, or choose another folder."
        )


def prepare_training_args(args: TrainingArguments) -> None:
    """Settings every recipe wants whatever the user passed. Call it before loading the model:
    it seeds the RNGs, so that new weights (a classification head) are the same in every run."""
    set_seed(args.seed)
    if args.gradient_checkpointing and args.gradient_checkpointing_kwargs is None:
        # Re-entrant checkpointing gives frozen-input blocks no gradients (stack-notes pitfall 7).
        # transformers 5 reads activation_checkpointing_kwargs; gradient_* is its deprecated mirror.
        args.gradient_checkpointing_kwargs = {"use_reentrant": False}
        if hasattr(args, "activation_checkpointing_kwargs"):
            args.activation_checkpointing_kwargs = args.gradient_checkpointing_kwargs
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # pinning only helps copies to an accelerator
    if args.ddp_find_unused_parameters is None:
        # DDP only tracks parameters that require grad, and every trainable one (any --trainable
        # policy, LoRA) takes part in each forward: searching the graph for unused ones is waste.
        args.ddp_find_unused_parameters = False
    check_precision(args)
    check_report_to(args)
    check_fsdp_device()


# accelerate (1.15) switches FSDP on for accelerator devices only. Tests that make it honour FSDP
# on CPU, to exercise the FSDP2 code paths without a GPU, turn this off.
FSDP_NEEDS_ACCELERATOR = True


def check_fsdp_device() -> None:
    requested = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    if requested and FSDP_NEEDS_ACCELERATOR and not accelerator_available():
        raise UserError(
            "FSDP (an accelerate config with distributed_type: FSDP) needs GPUs: without one, accelerate would "
            "silently train as plain DDP, or fail loading the model on rank 1; use accelerate_configs/cpu.yaml here."
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


def precision_name(args: TrainingArguments) -> str:
    return describe_precision(args)


def device_name(args: TrainingArguments) -> str:
    device = args.device
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x{args.world_size}"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads) x{args.world_size}"


def print_plan(lines: dict[str, object], args: TrainingArguments) -> None:
    if not args.should_log:
        return
    width = max(len(key) for key in lines)
    print("plan:")
    for key, value in lines.items():
        print(f"  {key.ljust(width)}  {value}")
    print(flush=True)
