"""GPT-2 learns to follow instructions (Alpaca-style instruction fine-tuning).

The story, as in chapter 7 of "Build a Large Language Model (From Scratch)":
1. Data: instruction-data.json, 1100 entries (instruction, optional input, output),
   downloaded once and checked against its sha256; split in file order, no shuffle, into
   935 train / 110 test / 55 validation entries.
2. Prompt: the Alpaca format (preamble, ### Instruction:, ### Input: only when there is an
   input, ### Response:), then the output and one end-of-text token the model learns to stop at.
3. Model: GPT-2 medium (355M), every parameter trains.
4. Two epochs of AdamW (lr 5e-5, weight decay 0.1, batch 8), batches of similar length padded
   to their own longest example; padding carries no loss, and the LM head runs only where
   labels are.
   Losses on train and validation every 20 steps and at each epoch's end, each time with the
   model's response to the first validation instruction.
5. Greedy answers to the 110 test instructions (batched, stopping at end-of-text), scored with
   ROUGE-L against the references; saved in test_responses.json with report.md and the model.

Your own data: `--dataset FILE` (json list, jsonl, csv, parquet or a folder of split files);
other field names through `--instruction_column`, `--input_column`, `--output_column`;
prompt/completion data is read as instruction/output. Examples longer than the model's
context (or --max_length) lose the end of their request, never the response.

    accelerate launch recipes/instruction.py [--mask_prompt] [--judge_url http://localhost:11434]
    python recipes/instruction.py --dataset qa.jsonl --instruction_column question --output_column answer
    python -m hf_finetune.generate outputs/instruction --instruction "Name the capital of France."
"""

from hf_finetune.core.errors import run_cli
from hf_finetune.methods.instruction.train import main

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

if __name__ == "__main__":
    run_cli(lambda argv: main(argv, defaults=DEFAULTS))
