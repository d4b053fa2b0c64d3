"""Bloom learns to say words in Spanish: causal LM fine-tuning three ways.

The story, after "CausalLM part 2: finetuning a model" (Theo Lebryk, 2024):
1. Data: five made-up chat turns in the `### Human: ... ### Assistant: ...` form, each asking
   how to say a word in Spanish; a held-out word ("day") tests whether the task generalises.
   `--dataset` takes your own conversations instead (text form, prompt/completion or messages).
   Conversations longer than the model's context (or --max_length) keep their start; one left
   without an answer token is dropped, and the plan counts both. A held-out question longer
   than the context keeps its end (room is left for the answer), and stderr says so.
2. Model: Bloom-560m, every parameter trains; right padding for training, left for generation.
3. Method (`--method`, or all three with `--compare`):
   - copy_labels: labels = input_ids, the model learns the human text too;
   - masked (default): human turns are -100, each answer and the end-of-sequence closing it are
     learned; no capacity is spent predicting what the human says;
   - completion_only: TRL's SFTTrainer with prompt-completion data (completion_only_loss), or
     messages and assistant_only_loss for multi-turn data.
4. 15 epochs of AdamW (lr 5e-5, batch 1, seed 1), as in the tutorial.
5. Results in outputs/spanish_chat: comparison.md/.json (time, tokens carrying loss, final
   loss, greedy answers to the training and held-out questions), loss.png/.pdf, the model(s).

    accelerate launch recipes/spanish_chat.py [--compare] [--method copy_labels|masked|completion_only]
"""

from hf_finetune.core.errors import run_cli
from hf_finetune.methods.chat.conversations import ASSISTANT, USER, Turn
from hf_finetune.methods.chat.train import main

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

if __name__ == "__main__":
    run_cli(lambda argv: main(argv, defaults=DEFAULTS, demo=DEMO))
