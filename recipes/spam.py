"""GPT-2 becomes an SMS spam classifier (the head method).

The story, as in chapter 6 of "Build a Large Language Model (From Scratch)":
1. Data: the UCI SMS Spam Collection, ham undersampled to the 747 spam messages, split
   70/10/20 with a seed (1045/149/300), labels ham=0 and spam=1.
2. Model: GPT-2 with its LM head swapped for a 2-class head; the class is read at the last
   real (non-pad) token, which is the only one that has seen the whole message.
3. Only the last transformer block, the final LayerNorm and the head train.
4. Five epochs of AdamW (lr 5e-5, weight decay 0.1, batch 8), evaluated every 50 steps and at
   every epoch's end; texts are padded per batch, never to a global maximum.
5. Results in outputs/spam: all_results.json, loss/accuracy plots, report.md, and a model
   that `transformers.pipeline("text-classification", model="outputs/spam")` loads.

    accelerate launch recipes/spam.py [--any TrainingArguments flag] [--config FILE.yaml]
"""

from hf_finetune.core.errors import run_cli
from hf_finetune.methods.head.train import main

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

if __name__ == "__main__":
    run_cli(lambda argv: main(argv, defaults=DEFAULTS))
