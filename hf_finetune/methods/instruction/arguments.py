"""The instruction method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_finetune.core.errors import UserError

from .data import Columns
from .generate import DEFAULT_MAX_NEW_TOKENS


@dataclass
class InstructionArguments:
    dataset: str = field(
        default="instruction_data",
        metadata={
            "help": "instruction_data (the book's 1100 entries, downloaded and checksum-verified), a local "
            "json/jsonl file or folder, a save_to_disk folder, or a Hub dataset id (e.g. tatsu-lab/alpaca); "
            "entries need instruction and output, and optionally input (other names: --instruction_column, "
            "--input_column, --output_column; prompt/completion columns are read as instruction/output)."
        },
    )
    instruction_column: str = field(
        default="instruction",
        metadata={"help": "Column holding the instruction (prompt/completion data is read as instruction/output "
                  "when the data has no instruction and output columns)."},
    )
    input_column: str = field(default="input", metadata={"help": "Column holding the optional input."})
    output_column: str = field(default="output", metadata={"help": "Column holding the reference response."})
    dataset_url: str | None = field(default=None, metadata={"help": "Download instruction_data from this URL."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default ~/.cache/hf_finetune)."})
    split: str = field(
        default="0.85,0.05,0.10",
        metadata={"help": "train,validation,test fractions for one-split data, cut in file order (train, test, "
                  "validation) without shuffling, as the book does."},
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "Longest training example in tokens; longer prompts are cut first, never the response."},
    )
    mask_prompt: bool = field(
        default=False, metadata={"help": "Train on the response only (instruction and input labels set to -100)."}
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Most tokens generated per test response."}
    )
    sample_max_new_tokens: int = field(
        default=64, metadata={"help": "Most tokens generated for the fixed validation example at each evaluation."}
    )
    generation_batch_size: int = field(default=16, metadata={"help": "Test prompts generated per batch."})
    train_eval_samples: int = field(
        default=40, metadata={"help": "Training examples whose loss is measured at each evaluation."}
    )
    report_examples: int = field(default=5, metadata={"help": "Test responses shown in report.md."})
    judge_url: str | None = field(
        default=None,
        metadata={"help": "Ollama (http://localhost:11434) or OpenAI-compatible (http://host/v1) server that "
                  "scores each test response 0-100. Without it nothing is sent anywhere."},
    )
    judge_model: str = field(default="llama3", metadata={"help": "Model name the judge server runs."})

    def columns(self) -> Columns:
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
