"""Bloom learns to say words in Spanish: causal LM fine-tuning three ways, after "CausalLM part 2:
finetuning a model" (Theo Lebryk, 2024):

    hf-finetune chat [--compare] [--method copy_labels|masked|completion_only]
    accelerate launch -m hf_finetune chat [flags]   (or recipes/spanish_chat.py)
    hf-finetune chat-answer outputs/spanish_chat 'How do you say "day" in Spanish?'

Five made-up `### Human: ... ### Assistant: ...` turns, each asking how to say a word in
Spanish, and a held-out word ("day"); Bloom-560m, every parameter trains for 15 epochs of AdamW
(lr 5e-5, batch 1). The loss: copy_labels learns the whole text; masked (default) each answer
and the end-of-sequence closing it; completion_only is TRL's SFTTrainer. outputs/spanish_chat
gets comparison.md/.json (time, tokens carrying loss, final loss, greedy answers to the training
and held-out questions), loss.png and the model(s).
"""

from __future__ import annotations

from hf_finetune.core.errors import run_cli
from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import exit_with_help_if_asked
from hf_finetune.methods.chat.arguments import ARGUMENTS
from hf_finetune.methods.chat.turns import ASSISTANT, USER, Turn

WORDS = {"dog": "perro", "water": "agua", "hello": "hola", "tree": "árbol", "mother": "madre"}
DEMO = [[Turn(USER, f'How do you say "{english}" in Spanish?'), Turn(ASSISTANT, spanish)] for english, spanish in WORDS.items()]

DEFAULTS = dict(
    # data
    heldout_question='How do you say "day" in Spanish?',
    heldout_answer="día",
    # model
    model_name_or_path="bigscience/bloom-560m",
    trainable="all",
    # method
    method="masked",
    # training
    output_dir="outputs/spanish_chat",
    seed=1,
    num_train_epochs=15,
    learning_rate=5e-5,
    per_device_train_batch_size=1,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
)


def main(argv: list[str] | None = None) -> list[dict]:
    with command_help(description=__doc__):
        exit_with_help_if_asked(ARGUMENTS, argv, DEFAULTS)
        from hf_finetune.methods.chat import train  # torch: not for --help

        return train.main(argv, defaults=DEFAULTS, demo=DEMO)


if __name__ == "__main__":
    run_cli(main)
