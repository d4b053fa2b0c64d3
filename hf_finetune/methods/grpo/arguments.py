"""The GRPO method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments),
and the GRPOConfig it trains with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments, training_args_as
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments

if TYPE_CHECKING:  # torch and datasets: not for --help
    from transformers import TrainingArguments

    from hf_finetune.methods.text.instructions import Columns



@dataclass
class GrpoArguments:
    help_section: ClassVar[str] = "GRPO method"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"input_column", "output_column", "split", "dedupe", "max_completion_length", "temperature"}
    )

    dataset: str = field(
        default="instruction_data",
        metadata={"help": "Prompts: instruction_data (the book's), a file, folder or Hub id."},
    )
    instruction_column: str = field(default="instruction", metadata={"help": "Instruction column."})
    input_column: str = field(default="input", metadata={"help": "Column of the optional input."})
    output_column: str = field(default="output", metadata={"help": "Column of the reference answer (for exact)."})
    dataset_url: str | None = field(default=None, metadata={"help": "Download instruction_data from this URL."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default: ~/.cache/hf_finetune)."})
    split: str = field(default="0.85,0.05,0.10", metadata={"help": "train,validation,test fractions (file order)."})
    dedupe: bool = field(default=False, metadata={"help": "Drop exact and near duplicate entries before splitting."})
    rewards: str | None = field(
        default=None,
        metadata={"help": "Comma-separated, added up: exact, contains:WORD, avoids:WORD, length:MIN-MAX, "
                  "ends:TEXT, yours (--reward_file)."},
    )
    reward_file: str | None = field(default=None, metadata={"help": "A Python file of your reward functions."})
    reward_model: str | None = field(default=None, metadata={"help": "A reward run folder whose score is a reward."})
    num_generations: int = field(default=4, metadata={"help": "Answers sampled per prompt."})
    max_completion_length: int = field(default=64, metadata={"help": "Longest sampled answer in tokens."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the answers."})
    beta: float = field(default=0.04, metadata={"help": "KL weight (0: not measured)."})
    generation_batch_size: int = field(default=16, metadata={"help": "Test prompts answered per batch (greedy)."})
    report_examples: int = field(default=5, metadata={"help": "Test prompts shown before and after in report.md."})

    def columns(self) -> Columns:
        from hf_finetune.methods.text.instructions import Columns  # datasets: not for --help

        return Columns(self.instruction_column, self.input_column, self.output_column)

    def reward_specs(self) -> list[str]:
        return [spec.strip() for spec in (self.rewards or "").split(",") if spec.strip()]

    def check(self, training_args: TrainingArguments) -> None:
        if not self.reward_specs() and not self.reward_model:
            raise UserError("name at least one reward: --rewards (e.g. --rewards exact), or --reward_model RUN.")
        if self.reward_file and not self.rewards:
            raise UserError(f"--reward_file {self.reward_file}: name the functions to use with --rewards.")
        for name in ("max_completion_length", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1 (got {getattr(self, name)}).")
        if self.report_examples < 0:
            raise UserError(f"--report_examples must not be negative (got {self.report_examples}).")
        if self.num_generations < 2:
            raise UserError(f"--num_generations must be at least 2 (got {self.num_generations}): GRPO compares the "
                            "answers of one prompt with each other.")  # fmt: skip
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise UserError(f"--temperature must be above 0 (got {self.temperature}).")
        if not math.isfinite(self.beta) or self.beta < 0:
            raise UserError(f"--beta must be at least 0 (got {self.beta}).")
        for name in ("instruction_column", "input_column", "output_column"):
            if not getattr(self, name).strip():
                raise UserError(f"--{name} is empty; name a column of the data.")
        batch = training_args.per_device_train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
        if batch % self.num_generations:
            raise UserError(
                f"--per_device_train_batch_size: the {batch} answers of a step (x processes x "
                f"--gradient_accumulation_steps) must be whole groups of --num_generations {self.num_generations}."
            )
        evaluated = training_args.per_device_eval_batch_size * training_args.world_size
        if training_args.eval_strategy != "no" and evaluated % self.num_generations:
            raise UserError(
                f"--per_device_eval_batch_size: the {evaluated} answers of an evaluation batch (x processes) must be "
                f"whole groups of --num_generations {self.num_generations}."
            )


def grpo_config_from(args: TrainingArguments, grpo: GrpoArguments):
    """A GRPOConfig with exactly the user's TrainingArguments: GRPOConfig's own defaults (gradient
    checkpointing and bf16 on, learning rate 1e-6) would not be what the flags say."""
    from trl import GRPOConfig

    return training_args_as(
        GRPOConfig,
        args,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        beta=grpo.beta,
    )


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, GrpoArguments, RunArguments, CommonTrainingArguments, LoraArguments)
