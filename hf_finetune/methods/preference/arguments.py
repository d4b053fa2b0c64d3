"""The preference method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments),
and the DPOConfig it trains with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments, training_args_as
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments
from hf_finetune.methods.text import DEFAULT_MAX_NEW_TOKENS
from hf_finetune.methods.text.pair_arguments import PairDataArguments

if TYPE_CHECKING:  # torch and datasets: not for --help
    from transformers import TrainingArguments

# The losses TRL 1.16's DPOTrainer offers (DPOConfig.loss_type); tests/methods/test_preference_data.py
# checks this list against the installed TRL.
LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip


@dataclass
class PreferenceArguments(PairDataArguments):
    # The data flags (--dataset, the columns, --split, --max_length, ...) are PairDataArguments'.
    help_section: ClassVar[str] = "preference method"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"dataset_url", "cache_dir", "loss_weights", "label_smoothing", "precompute_ref_log_probs",
         "generation_batch_size", "report_examples"}
    )

    beta: float = field(
        default=0.1, metadata={"help": "Higher: the model stays nearer the reference."}
    )
    loss_type: str = field(
        default="sigmoid",
        metadata={
            "help": "TRL's loss: sigmoid (DPO), sigmoid_norm (the book's), ipo, hinge, robust, ...; a,b: both."
        },
    )
    loss_weights: str | None = field(
        default=None, metadata={"help": "Weight of each --loss_type, comma-separated (default: 1 each)."}
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "Chance that a preference is wrong (robust, exo_pair)."},
    )
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={"help": "The reference scores each pair once, up front."},
    )
    max_new_tokens: int = field(default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Longest test response in tokens."})
    generation_batch_size: int = field(default=16, metadata={"help": "Test prompts generated per batch."})
    report_examples: int = field(default=5, metadata={"help": "Test prompts shown before and after in report.md."})
    judge_url: str | None = field(
        default=None,
        metadata={"help": "Judge server, Ollama or OpenAI-compatible (else nothing is sent)."},
    )
    judge_model: str = field(default="llama3", metadata={"help": "The judge server's model."})

    def loss_types(self) -> list[str]:
        return [name.strip() for name in self.loss_type.split(",")]

    def weights(self) -> list[float] | None:
        if self.loss_weights is None:
            return None
        try:
            return [float(weight) for weight in self.loss_weights.split(",")]
        except ValueError:
            raise UserError(f"--loss_weights: '{self.loss_weights}' is not a comma-separated list of numbers.") from None

    def check(self) -> None:
        self.check_pair_flags()
        for name in ("max_new_tokens", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1 (got {getattr(self, name)}).")
        if self.report_examples < 0:
            raise UserError(f"--report_examples must not be negative (got {self.report_examples}).")
        if self.beta <= 0:
            raise UserError(f"--beta must be above 0 (got {self.beta}); DPO's usual values are 0.1 to 0.5.")
        unknown = [name for name in self.loss_types() if name not in LOSS_TYPES]
        if unknown:
            raise UserError(
                f"--loss_type: '{unknown[0]}' is not a loss TRL's DPOTrainer offers; use one of {', '.join(LOSS_TYPES)}."
            )
        weights = self.weights()
        if weights is not None and len(weights) != len(self.loss_types()):
            raise UserError(
                f"--loss_weights gives {len(weights)} weight(s) for {len(self.loss_types())} --loss_type(s); give one each."
            )
        if not 0 <= self.label_smoothing < 0.5:
            raise UserError(f"--label_smoothing must be at least 0 and below 0.5 (got {self.label_smoothing}).")
        if "exo_pair" in self.loss_types() and self.label_smoothing == 0:
            raise UserError("--loss_type exo_pair needs --label_smoothing above 0 (the EXO paper suggests 1e-3).")


def dpo_config_from(args: TrainingArguments, preference: PreferenceArguments, max_length: int | None):
    """A DPOConfig with exactly the user's TrainingArguments: DPOConfig's own defaults (gradient
    checkpointing and bf16 on, learning rate 1e-6) would not be what the flags say."""
    from trl import DPOConfig

    return training_args_as(
        DPOConfig,
        args,
        beta=preference.beta,
        loss_type=preference.loss_types(),
        loss_weights=preference.weights(),
        label_smoothing=preference.label_smoothing,
        precompute_ref_log_probs=preference.precompute_ref_log_probs,
        max_length=max_length,  # every pair already fits: the collator cuts nothing
        dataset_num_proc=None,
    )


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, PreferenceArguments, RunArguments, CommonTrainingArguments, LoraArguments)
