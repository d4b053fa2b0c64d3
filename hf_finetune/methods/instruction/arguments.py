"""The instruction method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments
from hf_finetune.methods.text import DEFAULT_MAX_NEW_TOKENS


@dataclass
class InstructionArguments:
    help_section: ClassVar[str] = "instruction method"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"train_eval_samples", "sample_max_new_tokens", "input_column", "split", "dedupe", "max_length"}
    )

    dataset: str = field(
        default="instruction_data",
        metadata={
            "help": "instruction_data (the book's), a file, folder or Hub id (tatsu-lab/alpaca)."
        },
    )
    instruction_column: str = field(
        default="instruction",
        metadata={"help": "Column of the instruction (or prompt)."},
    )
    input_column: str = field(default="input", metadata={"help": "Column of the optional input."})
    output_column: str = field(default="output", metadata={"help": "Column of the reference response."})
    dataset_url: str | None = field(default=None, metadata={"help": "Download instruction_data from this URL."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default: ~/.cache/hf_finetune)."})
    split: str = field(
        default="0.85,0.05,0.10",
        metadata={"help": "train,validation,test fractions of one-split data (in file order)."},
    )
    dedupe: bool = field(
        default=False,
        metadata={"help": "Drop exact and near duplicate entries before splitting."},
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "Longest example in tokens (the prompt is cut, not the response)."},
    )
    mask_prompt: bool = field(
        default=False, metadata={"help": "Learn the response only (prompt labels -100)."}
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Longest test response in tokens."}
    )
    sample_max_new_tokens: int = field(
        default=64, metadata={"help": "Longest validation response shown at each evaluation."}
    )
    generation_batch_size: int = field(default=16, metadata={"help": "Test prompts generated per batch."})
    train_eval_samples: int = field(
        default=40, metadata={"help": "Training examples scored at each evaluation."}
    )
    report_examples: int = field(default=5, metadata={"help": "Test responses shown in report.md."})
    judge_url: str | None = field(
        default=None,
        metadata={"help": "Ollama or OpenAI-compatible server scoring the test answers 0-100 (default: none, "
                  "nothing is sent)."},
    )
    judge_model: str = field(default="llama3", metadata={"help": "The judge server's model."})

    def columns(self):
        from hf_finetune.methods.text.instructions import Columns  # datasets: not for --help

        return Columns(self.instruction_column, self.input_column, self.output_column)

    def check(self) -> None:
        for name in ("max_length", "max_new_tokens", "sample_max_new_tokens", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1 (got {getattr(self, name)}).")
        for name in ("train_eval_samples", "report_examples"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name} must not be negative (got {getattr(self, name)}).")
        for name in ("instruction_column", "input_column", "output_column"):
            if not getattr(self, name).strip():
                raise UserError(f"--{name} is empty; name a column of the data.")
        if self.instruction_column == self.output_column:
            raise UserError(f"--instruction_column and --output_column both name '{self.output_column}'; they must differ.")


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, InstructionArguments, RunArguments, CommonTrainingArguments, LoraArguments)
