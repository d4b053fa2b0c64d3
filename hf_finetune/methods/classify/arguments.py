"""The classifiers' flags: the data, calibration, the final training-split sample, each method's
own; and each classify command's argument dataclasses in the order its `main` unpacks them. No
torch here: `--help` reads these before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments

CLASSIFIER_METHODS = ("label-token", "head")
DEFAULT_SAMPLE = 2000  # --final_train_sample


@dataclass
class DataArguments:
    help_section: ClassVar[str] = "data"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"split_seed", "class_names", "balance", "dedupe", "max_length", "train_eval_samples"}
    )

    dataset: str = field(
        default="sms_spam",
        metadata={
            "help": "A Hub id, file (csv, tsv, json(l), parquet, zip) or folder; or sms_spam, rotten_tomatoes."
        },
    )
    dataset_url: str | None = field(
        default=None, metadata={"help": "Download a registered dataset from this URL instead."}
    )
    text_column: str = field(default="text", metadata={"help": "Column of the texts."})
    label_column: str = field(default="label", metadata={"help": "Column of the labels."})
    class_names: str | None = field(
        default=None,
        metadata={"help": "Class names in id order, e.g. ham,spam (default: from the data)."},
    )
    balance: bool = field(
        default=False, metadata={"help": "Undersample every class to the smallest one's size (seeded)."}
    )
    dedupe: bool = field(
        default=False,
        metadata={"help": "Drop exact and near duplicate texts before balancing and splitting."},
    )
    split: str = field(
        default="0.7,0.1,0.2",
        metadata={"help": "train,validation,test fractions of one-split data."},
    )
    split_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the --split shuffle and of --balance (default: --seed; --seeds keeps one split)."},
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Truncate texts to this many tokens (default: the model's context)."}
    )
    train_eval_samples: int = field(
        default=256,
        metadata={"help": "Training examples scored at each evaluation (the train accuracy curve)."},
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Download cache (default: ~/.cache/hf_finetune)."}
    )


@dataclass
class CalibrationArguments:
    help_section: ClassVar[str] = "training"

    calibrate: bool = field(
        default=False,
        metadata={
            "help": "Calibrate probabilities on the validation split (a temperature; report.md: ECE)."
        },
    )


@dataclass
class FinalSampleArguments:
    help_section: ClassVar[str] = "data"
    rare_flags: ClassVar[frozenset[str]] = frozenset({"final_train_sample"})  # --help-all lists it

    final_train_sample: int = field(
        default=DEFAULT_SAMPLE,
        metadata={"help": "Training texts the final figures score (a seeded sample; 0: all of them)."},
    )

    def __post_init__(self):
        if self.final_train_sample < 0:
            raise UserError(f"--final_train_sample: {self.final_train_sample} must not be negative (0 scores every "
                            f"training text).")  # fmt: skip


@dataclass
class LabelTokenArguments:
    help_section: ClassVar[str] = "classifier"  # beside --method, which chooses it
    rare_flags: ClassVar[frozenset[str]] = frozenset({"separator"})  # --help-all lists it

    label_words: str | None = field(
        default=None,
        metadata={"help": "Comma-separated, in class order (default: the class names)."},
    )
    separator: str | None = field(
        default=None, metadata={"help": "Text before the label word (default: end-of-text token)."}
    )


@dataclass
class ClassifierArguments:
    help_section: ClassVar[str] = "classifier"

    method: str = field(
        default="label-token",
        metadata={
            "help": "label-token (the LM writes a label word) or head (a class head, as spam)."
        },
    )

    def __post_init__(self):
        self.method = self.method.replace("_", "-")  # label_token, as the package is named, is meant too
        if self.method not in CLASSIFIER_METHODS:
            raise UserError(f"--method: '{self.method}' is not a method; use {' or '.join(CLASSIFIER_METHODS)}.")


# CommonTrainingArguments: transformers' TrainingArguments once parsed (core/training_flags.py).
HEAD_ARGUMENTS = (ModelArguments, DataArguments, CalibrationArguments, RunArguments, CommonTrainingArguments,
                  LoraArguments, FinalSampleArguments)  # fmt: skip
LABEL_TOKEN_ARGUMENTS = (ModelArguments, DataArguments, LabelTokenArguments, RunArguments, CommonTrainingArguments,
                         LoraArguments, CalibrationArguments, FinalSampleArguments)  # fmt: skip
CLASSIFY_ARGUMENTS = (ModelArguments, DataArguments, ClassifierArguments, LabelTokenArguments, RunArguments,
                      CommonTrainingArguments, LoraArguments, CalibrationArguments, FinalSampleArguments)  # fmt: skip
