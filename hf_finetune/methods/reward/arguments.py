"""The reward method's own flags (with the pair data flags, ModelArguments, RunArguments,
TrainingArguments, LoraArguments), and the RewardConfig it trains with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments, training_args_as
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments
from hf_finetune.methods.text.pair_arguments import PairDataArguments

if TYPE_CHECKING:  # torch: not for --help
    from transformers import TrainingArguments



@dataclass
class RewardArguments(PairDataArguments):
    # The data flags (--dataset, the columns, --split, --max_length, ...) are PairDataArguments'.
    help_section: ClassVar[str] = "reward method"
    rare_flags: ClassVar[frozenset[str]] = frozenset({"scoring_batch_size"})  # --help-all's

    center_rewards_coefficient: float | None = field(
        default=None,
        metadata={"help": "Pull the scores towards mean 0 with this weight (TRL suggests 0.01; default: off)."},
    )
    scoring_batch_size: int = field(default=16, metadata={"help": "Sequences scored per batch for the report."})
    report_examples: int = field(default=5, metadata={"help": "Test pairs shown with their scores in report.md."})

    def check(self) -> None:
        self.check_pair_flags()
        if self.scoring_batch_size < 1:
            raise UserError(f"--scoring_batch_size must be at least 1 (got {self.scoring_batch_size}).")
        if self.report_examples < 0:
            raise UserError(f"--report_examples must not be negative (got {self.report_examples}).")
        coefficient = self.center_rewards_coefficient
        if coefficient is not None and (not math.isfinite(coefficient) or coefficient < 0):
            raise UserError(f"--center_rewards_coefficient must be a number of at least 0 (got {coefficient}).")


def reward_config_from(args: TrainingArguments, reward: RewardArguments, max_length: int):
    """A RewardConfig with exactly the user's TrainingArguments: RewardConfig's own defaults (gradient
    checkpointing and bf16 on, learning rate 1e-4) would not be what the flags say."""
    from trl import RewardConfig

    return training_args_as(
        RewardConfig,
        args,
        center_rewards_coefficient=reward.center_rewards_coefficient,
        max_length=max_length,  # every pair already fits: TRL filters nothing out
        dataset_num_proc=None,
    )


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, RewardArguments, RunArguments, CommonTrainingArguments, LoraArguments)
