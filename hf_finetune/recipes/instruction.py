"""GPT-2 learns to follow instructions (Alpaca-style instruction tuning), as in chapter 7 of
"Build a Large Language Model (From Scratch)":

    hf-finetune instruction [--mask_prompt] [--judge_url http://localhost:11434]
    hf-finetune instruction --dataset qa.jsonl --instruction_column question --output_column answer
    accelerate launch -m hf_finetune instruction [flags]   (or recipes/instruction.py)
    hf-finetune generate outputs/instruction --instruction "Name the capital of France."

The book's 1100 entries (downloaded once, sha256-checked) split in file order into 935 train /
110 test / 55 validation; the Alpaca prompt, then the output and one end-of-text token the model
learns to stop at (a long example loses the end of its request, never the response); GPT-2
medium, every parameter trains for two epochs of AdamW, batches of similar length; losses and a
validation response every 20 steps; greedy answers to the test split scored with ROUGE-L.
outputs/instruction gets report.md, test_responses.json and the model.
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.instruction.arguments import ARGUMENTS

DEFAULTS = dict(
    # data
    dataset="instruction_data",
    split="0.85,0.05,0.10",
    max_length=1024,
    # model
    model_name_or_path="gpt2-medium",
    trainable="all",
    # training
    output_dir="outputs/instruction",
    seed=123,
    num_train_epochs=2,
    learning_rate=5e-5,
    weight_decay=0.1,
    lr_scheduler_type="constant",  # the book's loop keeps the learning rate fixed
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    train_sampling_strategy="group_by_length",  # batches of similar length: little padding
    eval_strategy="steps",
    eval_steps=20,  # the book evaluates every 5 steps; each evaluation here also generates a response
    logging_steps=5,
    save_strategy="epoch",
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.instruction import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
