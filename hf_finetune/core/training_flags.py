"""The TrainingArguments flags plain `--help` shows, without importing transformers (which imports
torch: seconds): each with its help section, a short help of ours, and its field as
TrainingArguments declares it (type, default, choices). tests/core/test_cli_help.py checks every
field against the real TrainingArguments, so that this list cannot drift from it.

`CommonTrainingArguments` also stands for TrainingArguments in a command's tuple of argument
dataclasses (a method's `ARGUMENTS`), so that the tuple lives in a module that imports no torch:
parsing puts the real TrainingArguments in its place, except for plain --help.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal


def _flag(help: str, default, **metadata):
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class CommonTrainingArguments:
    # The fields' order is --help's order within each section; `flag_sections` gives each its section.
    flag_sections: ClassVar[dict[str, str]] = {
        "train_sampling_strategy": "data",
        **dict.fromkeys(["push_to_hub", "hub_model_id"], "hub"),
        **dict.fromkeys(["logging_steps", "log_level", "report_to"], "logging"),
    }
    help_section: ClassVar[str] = "training"

    train_sampling_strategy: str = _flag(
        "Batch order: random, sequential or group_by_length (similar lengths).",
        "random",
        choices=["random", "sequential", "group_by_length", "batch_rebalance"],
    )
    output_dir: str | None = _flag("The run's folder.", None)
    num_train_epochs: float = _flag("Passes over the training data.", 3.0)
    max_steps: int = _flag("Stop after N steps (-1: the epochs).", -1)
    learning_rate: float = _flag("Peak learning rate (AdamW).", 5e-05)
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
        "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
    ] = _flag("linear, cosine, constant, constant_with_warmup, polynomial, inverse_sqrt, ...", "linear")  # fmt: skip
    warmup_steps: float = _flag("Linear warm-up steps (below 1: a fraction of all steps).", 0)
    weight_decay: float = _flag("AdamW weight decay (not on biases and norms).", 0.0)
    per_device_train_batch_size: int = _flag("Examples per batch and device.", 8)
    per_device_eval_batch_size: int = _flag("Evaluation examples per batch and device.", 8)
    gradient_accumulation_steps: int = _flag("Batches per optimizer step.", 1)
    seed: int = _flag("Seed (weights, order, split).", 42)
    bf16: bool = _flag("bf16 mixed precision (default where native).", False)
    activation_checkpointing: bool | None = _flag(
        "Less memory, slower steps (also --gradient_checkpointing).", None, nargs="?", const=True
    )
    eval_strategy: Literal["no", "steps", "epoch"] = _flag("Evaluate: no, steps or epoch.", "no")
    eval_steps: float | None = _flag("Steps between evaluations.", None)
    save_strategy: Literal["no", "steps", "epoch", "best"] = _flag("Checkpoints: no, steps, epoch or best.", "steps")
    save_steps: float = _flag("Steps between checkpoints with --save_strategy steps.", 500)
    save_total_limit: int | None = _flag("Checkpoints kept; older ones are deleted.", None)
    resume_from_checkpoint: str | None = _flag("auto (newest in --output_dir) or a checkpoint.", None)
    push_to_hub: bool = _flag("Publish the finished run on the Hugging Face Hub.", False)
    hub_model_id: str | None = _flag("The repository: USER/NAME.", None)
    logging_steps: float = _flag("Steps between loss log lines.", 500)
    log_level: str = _flag(
        "info: + library messages, debug: + raw logs.",
        "passive",
        choices=["detail", "debug", "info", "warning", "error", "critical", "passive"],
    )
    report_to: str | None = _flag("Trackers: none, tensorboard, wandb, trackio, ... or all.", "none")


# Left to --help-all: the flags a user of a command rarely changes (they keep their short help there).
RARE_TRAINING_FLAGS = frozenset({
    "train_sampling_strategy", "lr_scheduler_type", "warmup_steps", "weight_decay", "per_device_eval_batch_size",
    "bf16", "activation_checkpointing", "save_strategy", "save_steps", "save_total_limit", "push_to_hub",
    "hub_model_id", "report_to",
})  # fmt: skip

# flag name: (its --help section, its help text)
TRAINING_FLAGS = {
    item.name: (CommonTrainingArguments.flag_sections.get(item.name, "training"), item.metadata["help"])
    for item in fields(CommonTrainingArguments)
}


def is_training_arguments(dataclass_type: type) -> bool:
    """transformers' TrainingArguments (or a subclass: TRL's configs), or the stand-in above."""
    return dataclass_type is CommonTrainingArguments or any(
        cls.__name__ == "TrainingArguments" and cls.__module__.startswith("transformers")
        for cls in dataclass_type.__mro__
    )


def real_training_arguments(dataclass_types) -> tuple[type, ...]:
    """`dataclass_types` with transformers' TrainingArguments where the stand-in is (imports torch)."""
    if CommonTrainingArguments not in dataclass_types:
        return tuple(dataclass_types)
    from transformers import TrainingArguments

    return tuple(TrainingArguments if item is CommonTrainingArguments else item for item in dataclass_types)
