"""The flags every training command shares, beside TrainingArguments': the model, the run and LoRA.

Each argument dataclass of the project names its `--help` section (`help_section`, and
`flag_sections` for a flag that belongs elsewhere); `rare_flags` are listed by --help-all only.
A method's own dataclass (next to its train.py) does the same, so the help code imports no method.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # imports torch: not for --help
    from transformers import TrainingArguments


@dataclass
class ModelArguments:
    help_section: ClassVar[str] = "model"
    rare_flags: ClassVar[frozenset[str]] = frozenset({"trust_remote_code"})

    model_name_or_path: str = field(
        default="gpt2",
        metadata={"help": "Hub id or folder."},
    )
    trainable: str = field(
        default="last_block",
        metadata={
            "help": "What trains: head, last_block, last_blocks:N (+ final norm, head) or all."
        },
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Let model code from the Hub run."}
    )


@dataclass
class RunArguments:
    help_section: ClassVar[str] = "training"
    flag_sections: ClassVar[dict[str, str]] = {"traceback": "logging"}
    rare_flags: ClassVar[frozenset[str]] = frozenset(
        {"skip_nonfinite_batches", "cache_frozen", "cache_frozen_dtype", "cache_frozen_max_gb", "seeds_vary_split",
         "traceback", "overwrite_output_dir"}  # a run refused for want of it names it
    )

    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace a finished run in --output_dir."}
    )
    skip_nonfinite_batches: bool = field(
        default=False,
        metadata={"help": "Skip and log a NaN/inf batch instead of stopping."},
    )
    cache_frozen: bool = field(
        default=True,
        metadata={"help": "Frozen layers run once per text (no dropout)."},
    )
    cache_frozen_dtype: str = field(
        default="auto",
        metadata={"help": "dtype of the frozen layers' cached output: auto (the training precision), float32, "
                  "bfloat16 or float16."},  # fmt: skip
    )
    cache_frozen_max_gb: float | None = field(
        default=None,
        metadata={"help": "Most gigabytes the cache may take per process (default: half the free memory, shared "
                  "between the processes); a larger cache is not built and training runs the whole model."},  # fmt: skip
    )
    seeds: str | None = field(
        default=None,
        metadata={"help": "A run per seed (e.g. 1,2,3) and a summary.md."},
    )
    seeds_vary_split: bool = field(
        default=False,
        metadata={"help": "With --seeds: each seed also cuts its own data split (the spread includes the split's)."},
    )
    # Not --debug: TrainingArguments owns that flag (for its own underflow/overflow debugging).
    traceback: bool = field(default=False, metadata={"help": "Show the full traceback of an error."})
    # Not a flag: the flags the user gave (command line or --config), set by parse_arguments; None
    # when the run was not parsed from a command line. A run scales only the intervals not given.
    given_flags: frozenset[str] | None = field(default=None, init=False, repr=False)


@dataclass
class LoraArguments:
    help_section: ClassVar[str] = "LoRA"
    rare_flags: ClassVar[frozenset[str]] = frozenset({"lora_alpha", "lora_dropout", "lora_target_modules",
                                                      "merge_adapters"})

    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters, not --trainable's layers."})
    lora_r: int = field(default=8, metadata={"help": "Rank of the LoRA update matrices."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling: the update times alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "Modules to adapt, e.g. c_attn,c_proj, or all-linear (default: PEFT's choice: c_attn for "
            "GPT-2, query_key_value for Bloom)."
        },
    )
    merge_adapters: bool = field(
        default=False, metadata={"help": "Save a plain model, adapters merged in (pipeline() loads it)."}
    )


def training_args_as(config_class: type[TrainingArguments], args: TrainingArguments, **changes) -> TrainingArguments:
    """`args` as another TrainingArguments class (TRL's SFTConfig, ...) with exactly the user's
    values, not that class's own defaults; `changes` set its own fields or replace values."""
    from transformers import TrainingArguments

    values = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init and not f.name.startswith("_")}
    return config_class(**{**values, **changes})
