"""GPT-2 becomes an SMS spam classifier (the head method), as in chapter 6 of "Build a Large
Language Model (From Scratch)":

    hf-finetune spam [flags]                        (or: python recipes/spam.py)
    accelerate launch -m hf_finetune spam [flags]   (or recipes/spam.py)
    hf-finetune predict outputs/spam "WINNER! Claim your prize now" "See you at 6?"

The UCI SMS Spam Collection, ham undersampled to the 747 spam messages, split 70/10/20 with a
seed (1045/149/300); GPT-2 with a 2-class head read at the last real (non-pad) token, the only
one that has seen the whole message; the last block, final LayerNorm and head train for five
epochs of AdamW, evaluated every 50 steps and at each epoch's end. outputs/spam gets report.md,
all_results.json, plots and a model `pipeline("text-classification")` loads.
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.classify.arguments import HEAD_ARGUMENTS as ARGUMENTS

DEFAULTS = dict(
    # data
    dataset="sms_spam",
    balance=True,
    split="0.7,0.1,0.2",
    # model
    model_name_or_path="gpt2",
    trainable="last_block",
    # training
    output_dir="outputs/spam",
    seed=123,
    num_train_epochs=5,
    learning_rate=5e-5,
    weight_decay=0.1,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=32,
    train_sampling_strategy="group_by_length",  # batches of similar length: little padding
    eval_strategy="steps",
    eval_steps=50,
    logging_steps=10,
    save_strategy="epoch",
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.classify.head import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
