"""GRPO after instruction tuning: the instruction-tuned GPT-2 samples answers to the book's
instructions and learns from rewards you can check, your own functions, or a reward model:

    hf-finetune instruction         (first: the run it starts from)
    hf-finetune grpo --rewards exact                  exactly the reference
    hf-finetune grpo --rewards "length:3-30,ends:."   short, ending with "."
    hf-finetune grpo --rewards brevity --reward_file my_rewards.py
    hf-finetune grpo --reward_model outputs/reward    a reward run's scores
    accelerate launch -m hf_finetune grpo [flags]     (or recipes/grpo.py)

Rewards: exact, contains:WORD, avoids:WORD, length:MIN-MAX (words), ends:TEXT; a --reward_file
function takes (prompts, completions, reference, **kwargs) and returns one number per completion.
The book's 1100 entries cut in file order (935 train / 55 validation / 110 test); 4 answers per
prompt, at most 64 tokens, KL weight 0.04; the validation reward, its spread and the KL every 10
steps; greedy test answers before and after: outputs/grpo/report.md (docs/grpo.md).
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.grpo.arguments import ARGUMENTS
from hf_finetune.methods.text import INSTRUCTION_RUN

DEFAULTS = dict(
    # data
    dataset="instruction_data",
    split="0.85,0.05,0.10",
    # model
    model_name_or_path=INSTRUCTION_RUN,
    trainable="all",
    # GRPO
    num_generations=4,
    max_completion_length=64,
    beta=0.04,
    # training
    output_dir="outputs/grpo",
    seed=123,
    max_steps=100,
    learning_rate=1e-5,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=16,
    eval_strategy="steps",
    eval_steps=10,
    logging_steps=5,
    save_strategy="steps",
    save_steps=50,
    save_total_limit=1,
    report_to="none",
)


def main(argv: list[str] | None = None) -> dict:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.grpo import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS)


if __name__ == "__main__":
    run_cli(main)
