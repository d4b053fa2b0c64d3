"""A reward model from the instruction-tuned GPT-2, trained on the book's preference pairs (the
polite answer preferred), with TRL's RewardTrainer:

    hf-finetune instruction         (first: the run it starts from)
    hf-finetune reward [--use_peft]
    hf-finetune reward --dataset pairs.jsonl --model_name_or_path gpt2 --output_dir outputs/rm
    hf-finetune score outputs/reward "Name the capital of France." "Paris." "I don't know."
    accelerate launch -m hf_finetune reward [flags]   (or recipes/reward.py)

The book's 1100 pairs (sha256-checked; 6 with chosen == rejected left out) cut in file order into
929 train / 110 test / 55 validation, as the preference recipe cuts them; a one-score head on the
start model, all parameters trained for one epoch at 1e-5, batches of 8 pairs; validation pairwise
accuracy every 20 steps; every held-out pair scored before and after: pairwise accuracy, margins,
calibration of sigmoid(margin): outputs/reward/report.md (docs/reward.md).
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.reward.arguments import ARGUMENTS
from hf_finetune.methods.text import INSTRUCTION_RUN

DEFAULTS = dict(
    # data
    dataset="preference_data",
    split="0.85,0.05,0.10",
    max_length=1024,
    # model
    model_name_or_path=INSTRUCTION_RUN,
    trainable="all",
    # training
    output_dir="outputs/reward",
    seed=123,
    num_train_epochs=1,
    learning_rate=1e-5,
    weight_decay=0.01,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    eval_strategy="steps",
    eval_steps=20,
    logging_steps=5,
    save_strategy="epoch",
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.reward import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
