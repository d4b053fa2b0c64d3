"""Classify any text/label dataset with a causal LM, by label token (default) or class head:

    hf-finetune classify [flags]      (also: python -m hf_finetune.sft [flags])
    hf-finetune classify --dataset reviews.csv --label_words bad,good
    hf-finetune classify --method head --output_dir outputs/sft-head
    accelerate launch -m hf_finetune classify [flags]
    hf-finetune predict outputs/sft "a gorgeous, moving film"

`python recipes/classify.py` runs it too. Label-token: the LM keeps its head and learns to write the label word after `text + separator`
(the loss only on the label word). Head: the spam recipe's class head at the last real token.
Every TrainingArguments flag works, and `--config FILE.yaml`.
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.classify.arguments import CLASSIFY_ARGUMENTS as ARGUMENTS

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


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.classify import command  # torch: not for --help

        return command.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
