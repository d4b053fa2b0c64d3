"""Classify any text/label dataset with a causal LM, by label token (default) or class head:

    python -m hf_finetune.classify --dataset rotten_tomatoes
    python -m hf_finetune.classify --dataset data/reviews --text_column review --label_words bad,good
    python -m hf_finetune.classify --dataset rotten_tomatoes --method head --output_dir outputs/sft-head
    accelerate launch -m hf_finetune.classify --dataset rotten_tomatoes

Label-token: the LM keeps its head and learns to write the label word after `text + separator`
(the loss only on the label word). Head: the spam recipe's class head at the last real token.
Every TrainingArguments flag works, and `--config FILE.yaml`.
"""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.methods.classify.calibration import CalibrationArguments
from hf_finetune.methods.classify.data import DataArguments
from hf_finetune.core.arguments import ModelArguments, RunArguments
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.lora import LoraArguments
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.classify.head.train import HeadMethod
from hf_finetune.methods.classify.label_token.train import LabelTokenArguments, LabelTokenMethod

ARGUMENTS = (
    ModelArguments, DataArguments, LabelTokenArguments, RunArguments, TrainingArguments, LoraArguments,
    CalibrationArguments,
)  # fmt: skip

DEFAULTS = dict(
    dataset="rotten_tomatoes",
    model_name_or_path="gpt2",
    trainable="last_block",
    output_dir="outputs/sft",
    seed=42,
    num_train_epochs=3,
    learning_rate=5e-5,
    weight_decay=0.1,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=32,
    train_sampling_strategy="group_by_length",  # batches of similar length: little padding
    eval_strategy="steps",
    eval_steps=250,
    logging_steps=25,
    save_strategy="epoch",
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, method_args, run_args, training_args, lora_args, calibration_args = parse_arguments(
        ARGUMENTS, argv, {**DEFAULTS, **(defaults or {})}, description=__doc__
    )
    if method_args.method == "head":
        for flag, value in (("--label_words", method_args.label_words), ("--separator", method_args.separator)):
            if value is not None:
                raise UserError(
                    f"{flag}: label words are written by --method label-token only; drop {flag} for --method head."
                )
        method = HeadMethod(model_args, data_args, run_args, training_args, lora_args, calibration_args)
        method.options += (method_args,)  # config.yaml says --method head, so it reruns as one
    else:
        method = LabelTokenMethod(
            model_args, data_args, method_args, run_args, training_args, lora_args, calibration_args
        )
    return run(method)


if __name__ == "__main__":
    run_cli(main)
