"""The flags of every method that reads preference pairs, in a module --help can import without
datasets or torch (the pairs themselves: pairs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hf_finetune.core.errors import UserError

if TYPE_CHECKING:
    from hf_finetune.methods.text.pairs import PreferenceData


@dataclass(frozen=True)
class PairColumns:
    """Which columns hold the instruction, the optional input and the two answers
    (--instruction_column, --input_column, --chosen_column, --rejected_column)."""

    instruction: str = "instruction"
    input: str = "input"
    chosen: str = "chosen"
    rejected: str = "rejected"


@dataclass
class PairDataArguments:
    """The flags of every method that reads preference pairs (preference, reward): the data, its
    columns and split, and the longest prompt + answer."""

    help_section: ClassVar[str] = "pairs"
    # --help-all lists them (a method's own rare_flags add to these: core/help.py is_rare).
    rare_flags: ClassVar[frozenset[str]] = frozenset(
        {"input_column", "split", "dedupe", "drop_identical_pairs", "max_length"}
    )

    dataset: str = field(
        default="preference_data",
        metadata={
            "help": "Pairs: preference_data (the book's), a file, folder or Hub id."
        },
    )
    instruction_column: str = field(
        default="instruction", metadata={"help": "Prompt column."}
    )
    input_column: str = field(default="input", metadata={"help": "Column of the optional input."})
    chosen_column: str = field(default="chosen", metadata={"help": "Preferred answer's column."})
    rejected_column: str = field(default="rejected", metadata={"help": "Rejected answer's column."})
    dataset_url: str | None = field(default=None, metadata={"help": "Download preference_data from this URL."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default: ~/.cache/hf_finetune)."})
    split: str = field(
        default="0.85,0.05,0.10",
        metadata={"help": "train,validation,test fractions."},
    )
    dedupe: bool = field(
        default=False,
        metadata={
            "help": "Drop the duplicate pairs the leakage report counts."
        },
    )
    drop_identical_pairs: bool | None = field(
        default=None,
        metadata={
            "help": "Drop chosen == rejected pairs (default: for preference_data only)."
        },
    )
    max_length: int = field(
        default=1024,
        metadata={"help": "Longest prompt + answer (the prompt is cut)."},
    )

    def columns(self) -> PairColumns:
        return PairColumns(self.instruction_column, self.input_column, self.chosen_column, self.rejected_column)

    def check_pair_flags(self) -> None:
        if self.max_length < 1:
            raise UserError(f"--max_length must be at least 1 (got {self.max_length}).")
        for name in ("instruction_column", "input_column", "chosen_column", "rejected_column"):
            if not getattr(self, name).strip():
                raise UserError(f"--{name} is empty; name a column of the data.")
        from hf_finetune.core.data.sources import check_dataset_url  # datasets: not for --help

        check_dataset_url(self.dataset, self.dataset_url)
        if self.chosen_column == self.rejected_column:
            raise UserError(f"--chosen_column and --rejected_column both name '{self.chosen_column}'; they must differ.")

    def load(self) -> PreferenceData:
        from hf_finetune.methods.text.pairs import load_preference_data  # datasets: not for --help

        return load_preference_data(self.dataset, self.dataset_url, self.cache_dir, self.split, self.columns(),
                                    self.drop_identical_pairs, self.dedupe)  # fmt: skip
