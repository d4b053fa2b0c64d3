"""The instruction-tuned GPT-2 learns to prefer polite answers (DPO), as in the bonus section of
chapter 7 of "Build a Large Language Model (From Scratch)":

    hf-finetune instruction         (first: the run it starts from)
    hf-finetune preference [--use_peft] [--judge_url http://localhost:11434]
    hf-finetune preference --dataset pairs.jsonl --loss_type ipo --beta 0.5
    hf-finetune preference --algorithm kto      (or orpo, simpo, cpo: no reference)
    accelerate launch -m hf_finetune preference [flags]

The book's 1100 pairs (sha256-checked; 6 with chosen == rejected left out) cut in file order into
929 train / 110 test / 55 validation; TRL's DPOTrainer with the book's settings (per-token loss,
beta 0.1, one epoch at 5e-6, batches of 8, all parameters, the start as reference); validation
rewards every 10 steps; greedy test answers before and after, ROUGE-L to both answers:
outputs/preference/report.md (docs/preference.md).
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.preference.arguments import ARGUMENTS
from hf_finetune.methods.text import INSTRUCTION_RUN

DEFAULTS = dict(
    # data
    dataset="preference_data",
    split="0.85,0.05,0.10",
    max_length=1024,
    # model
    model_name_or_path=INSTRUCTION_RUN,
    trainable="all",
    # DPO
    loss_type="sigmoid_norm",  # the book averages each answer's log-probabilities over its tokens
    beta=0.1,
    # training
    output_dir="outputs/preference",
    seed=123,
    num_train_epochs=1,
    learning_rate=5e-6,
    weight_decay=0.01,
    lr_scheduler_type="constant",  # the book's loop keeps the learning rate fixed
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    eval_strategy="steps",
    eval_steps=10,
    logging_steps=5,
    save_strategy="epoch",
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.preference import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
