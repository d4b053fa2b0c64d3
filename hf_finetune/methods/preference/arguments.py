"""The preference method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments),
and the TRL config it trains with (DPOConfig, KTOConfig, ORPOConfig or CPOConfig, per --algorithm)."""

from __future__ import annotations

import math
import os
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

# --algorithm: which TRL trainer learns from the pairs, and whether it needs the reference model.
ALGORITHMS = {
    "dpo": ("DPO", "TRL DPOTrainer", True),
    "kto": ("KTO", "TRL KTOTrainer", True),
    "orpo": ("ORPO", "TRL ORPOTrainer", False),
    "simpo": ("SimPO", "TRL CPOTrainer, simpo loss", False),
    "cpo": ("CPO", "TRL CPOTrainer", False),
}
# The flags only some algorithms read (a flag not listed here is every algorithm's).
FLAG_ALGORITHMS = {
    "loss_type": ("dpo",),
    "loss_weights": ("dpo",),
    "label_smoothing": ("dpo",),
    "precompute_ref_log_probs": ("dpo", "kto"),
    "desirable_weight": ("kto",),
    "undesirable_weight": ("kto",),
    "cpo_alpha": ("cpo", "simpo"),
    "simpo_gamma": ("simpo",),
}


@dataclass
class PreferenceArguments(PairDataArguments):
    # The data flags (--dataset, the columns, --split, --max_length, ...) are PairDataArguments'.
    help_section: ClassVar[str] = "preference method"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"dataset_url", "cache_dir", "loss_weights", "label_smoothing", "precompute_ref_log_probs",
         "generation_batch_size", "report_examples", "desirable_weight", "undesirable_weight", "cpo_alpha",
         "simpo_gamma"}
    )

    algorithm: str = field(
        default="dpo", metadata={"help": "dpo, kto (each answer alone), orpo, simpo or cpo (no reference model)."}
    )
    beta: float = field(
        default=0.1, metadata={"help": "DPO, KTO: higher stays nearer the reference; ORPO: odds-ratio weight."}
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
    desirable_weight: float = field(default=1.0, metadata={"help": "KTO: weight of the chosen answers' loss."})
    undesirable_weight: float = field(default=1.0, metadata={"help": "KTO: weight of the rejected answers' loss."})
    cpo_alpha: float | None = field(
        default=None, metadata={"help": "CPO, SimPO: weight of the chosen answers' NLL (default: 1 CPO, 0 SimPO)."}
    )
    simpo_gamma: float = field(default=0.5, metadata={"help": "SimPO: the reward margin it aims for."})

    @property
    def name(self) -> str:
        """The algorithm as written (DPO, KTO, ORPO, SimPO, CPO)."""
        return ALGORITHMS[self.algorithm][0]

    @property
    def uses_reference(self) -> bool:
        return ALGORITHMS[self.algorithm][2]

    def alpha(self) -> float:
        """CPO's weight of the chosen answers' NLL: the flag, else 1 for CPO and 0 for SimPO (pure SimPO)."""
        return self.cpo_alpha if self.cpo_alpha is not None else (0.0 if self.algorithm == "simpo" else 1.0)

    def loss_types(self) -> list[str]:
        return [name.strip() for name in self.loss_type.split(",")]

    def weights(self) -> list[float] | None:
        if self.loss_weights is None:
            return None
        try:
            return [float(weight) for weight in self.loss_weights.split(",")]
        except ValueError:
            raise UserError(f"--loss_weights: '{self.loss_weights}' is not a comma-separated list of numbers.") from None

    def check_algorithm(self, given: frozenset[str]) -> None:
        """--algorithm is one TRL offers, and no flag given is one it ignores (`given`: the flags typed)."""
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm: '{self.algorithm}' is not one of {', '.join(ALGORITHMS)}.")
        for flag, algorithms in FLAG_ALGORITHMS.items():
            if flag in given and self.algorithm not in algorithms:
                raise UserError(f"--{flag} is a flag of --algorithm {' or '.join(algorithms)}; --algorithm "
                                f"{self.algorithm} does not read it.")  # fmt: skip
        for flag in ("desirable_weight", "undesirable_weight", "simpo_gamma", "cpo_alpha"):
            value = getattr(self, flag)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise UserError(f"--{flag} must be a finite number of at least 0 (got {value}).")
        if self.desirable_weight == 0 and self.undesirable_weight == 0:
            raise UserError("--desirable_weight and --undesirable_weight are both 0: KTO would learn nothing.")

    def check(self, given: frozenset[str] = frozenset()) -> None:
        self.check_algorithm(given)
        self.check_pair_flags()
        for name in ("max_new_tokens", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1 (got {getattr(self, name)}).")
        if self.report_examples < 0:
            raise UserError(f"--report_examples must not be negative (got {self.report_examples}).")
        if not (math.isfinite(self.beta) and self.beta > 0):
            usual = "; DPO's usual values are 0.1 to 0.5" if self.algorithm == "dpo" else ""
            raise UserError(f"--beta must be above 0 (got {self.beta}){usual}.")
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


def trainer_config_from(args: TrainingArguments, preference: PreferenceArguments, max_length: int | None):
    """The config of --algorithm's TRL trainer, with exactly the user's TrainingArguments (as dpo_config_from)."""
    if preference.algorithm == "dpo":
        return dpo_config_from(args, preference, max_length)
    if preference.algorithm == "kto":
        from trl import KTOConfig

        return training_args_as(
            KTOConfig,
            args,
            beta=preference.beta,
            desirable_weight=preference.desirable_weight,
            undesirable_weight=preference.undesirable_weight,
            precompute_ref_log_probs=preference.precompute_ref_log_probs,
            max_length=max_length,  # every example already fits: the collator cuts nothing
            dataset_num_proc=None,
        )
    config_class, own = reference_free_config(preference)
    # Their collator needs every column it pads: TRL would turn remove_unused_columns off with a warning.
    return training_args_as(config_class, args, beta=preference.beta, max_length=max_length, dataset_num_proc=None,
                            remove_unused_columns=False, **own)  # fmt: skip


def reference_free_config(preference: PreferenceArguments) -> tuple[type, dict]:
    """ORPOConfig or CPOConfig (from trl.experimental, its notice silenced: it goes to no console) and the
    settings of --algorithm's own."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if preference.algorithm == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig, {}
    from trl.experimental.cpo import CPOConfig

    own = {"loss_type": "simpo", "simpo_gamma": preference.simpo_gamma} if preference.algorithm == "simpo" else {}
    return CPOConfig, {"cpo_alpha": preference.alpha(), **own}


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, PreferenceArguments, RunArguments, CommonTrainingArguments, LoraArguments)
