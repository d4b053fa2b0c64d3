"""Classify any text/label dataset with a causal LM, by label token (default) or class head:

    python -m hf_finetune.sft --dataset rotten_tomatoes
    python -m hf_finetune.sft --dataset data/reviews --text_column review --label_words bad,good
    python -m hf_finetune.sft --dataset rotten_tomatoes --method head --output_dir outputs/sft-head
    accelerate launch -m hf_finetune.sft --dataset rotten_tomatoes

Label-token: the LM keeps its head and learns to write the label word after `text + separator`
(the loss only on the label word). Head: the spam recipe's class head at the last real token.
Every TrainingArguments flag works, and `--config FILE.yaml`.
"""

from __future__ import annotations

from transformers import TrainingArguments

from .arguments import DataArguments, ModelArguments, RunArguments, parse_arguments
from .classification import train_classifier
from .errors import run_cli
from .label_token_run import LabelTokenArguments, train_label_token
from .lora import LoraArguments

SFT_ARGUMENTS = (ModelArguments, DataArguments, LabelTokenArguments, RunArguments, TrainingArguments, LoraArguments)

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
    model_args, data_args, method_args, run_args, training_args, lora_args = parse_arguments(
        SFT_ARGUMENTS, argv, {**DEFAULTS, **(defaults or {})}, description=__doc__
    )
    if method_args.method == "head":
        return train_classifier(model_args, data_args, run_args, training_args, lora_args)
    return train_label_token(model_args, data_args, method_args, run_args, training_args, lora_args)


if __name__ == "__main__":
    run_cli(main)
