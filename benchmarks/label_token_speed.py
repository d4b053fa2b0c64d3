"""Label-token method: the project's training throughput and evaluation peak memory against the
straightforward version of the classic tutorial, measured in one run.

Both sides use the real GPT-2 shape (124M, random weights), the real GPT-2 tokenizer and the real
rotten_tomatoes training/validation texts, the same trainable parameters and batch size.

- straightforward: every example padded (or cut) to 32 tokens, `text + eos + label`, the model's
  own loss over full-vocabulary logits at every position, and Trainer's default evaluation,
  which keeps the logits of every position of every example until the metric runs;
- project: whole texts, batches padded to their own longest text and grouped by length, the LM
  head only at the label positions (`LabelTokenTrainer`), evaluation keeping two label-word
  scores and one token per example.

Training runs both sides in one process with their steps interleaved, so a busy machine slows
both alike. Each evaluation runs in a process of its own, so one side's memory does not count
for the other: evaluation peak memory is the growth of the peak resident memory during
`evaluate()`.

    python benchmarks/label_token_speed.py --tokenizer ../shared/models/gpt2-tokenizer \
        --data ../shared/data/rt_polarity/hf_split_derived
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUTORIAL_MAX_LEN = 32


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def load_texts(data: Path, split: str, limit: int | None) -> tuple[list[str], list[int]]:
    rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text(encoding="utf-8").split("\n") if line]
    rows = rows[:limit] if limit else rows
    return [row["text"] for row in rows], [int(row["label"]) for row in rows]


def tutorial_encode(tokenizer, texts, labels, label_ids):
    """The tutorial's process_fn: text + eos + label, cut to the last 32 tokens or padded to 32."""
    import datasets

    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for text, label in zip(texts, labels):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id, label_ids[label]]
        pad = TUTORIAL_MAX_LEN - len(ids)
        ids = ids[-TUTORIAL_MAX_LEN:] + [tokenizer.pad_token_id] * max(pad, 0)
        real = min(len(ids), TUTORIAL_MAX_LEN) - max(pad, 0)
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * real + [0] * max(pad, 0))
        rows["labels"].append([-100] * (real - 1) + [label_ids[label]] + [-100] * max(pad, 0))
    return datasets.Dataset.from_dict(rows)


def build(options, side: str, split: str, limit: int | None):
    """A random-init GPT-2 (seed 0) and the Trainer of one side, on real texts."""
    import datasets
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, default_data_collator

    from hf_finetune.core.data.collate import padding_collator
    from hf_finetune.core.model.loading import load_tokenizer
    from hf_finetune.core.model.trainable import TrainablePolicy, apply_causal_lm_policy
    from hf_finetune.methods.classify.label_token.encoding import encode_label_token
    from hf_finetune.methods.classify.label_token.scoring import LabelTokenTrainer, label_token_metrics
    from hf_finetune.methods.classify.label_token.words import resolve_label_words

    torch.manual_seed(0)
    tokenizer = load_tokenizer(options.tokenizer)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer)))
    model.config.pad_token_id = tokenizer.pad_token_id
    apply_causal_lm_policy(model, TrainablePolicy.parse(options.trainable))
    words = resolve_label_words(tokenizer, ["neg", "pos"])
    texts, labels = load_texts(Path(options.data), split, limit)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="label_token_speed."),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=5e-5,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_pin_memory=False,
        seed=0,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if side == "project" else "random",
    )
    if side == "straightforward":
        dataset = tutorial_encode(tokenizer, texts, labels, [ids[0] for ids in words.token_ids])

        def tutorial_metrics(prediction):  # the tutorial's compute_metric: argmax at the label position
            logits, label_ids = prediction
            predicted = logits[:, :-1].argmax(-1)
            mask = label_ids[:, 1:] != -100
            return {"accuracy": float((predicted[mask] == label_ids[:, 1:][mask]).mean())}

        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
            data_collator=default_data_collator, compute_metrics=tutorial_metrics,
        )
    else:
        encoded, _ = encode_label_token(
            datasets.DatasetDict({"data": datasets.Dataset.from_dict({"text": texts, "label": labels})}),
            tokenizer, words, max_length=1024,
        )
        dataset = encoded["data"]
        trainer = LabelTokenTrainer(
            model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
            data_collator=padding_collator(tokenizer),
            compute_metrics=lambda p: label_token_metrics(p, words, ["neg", "pos"]),
            label_words=words, pad_token_id=tokenizer.pad_token_id,
        )
    return trainer, dataset


def measure_training(options) -> dict:
    """Both sides in one process, their steps interleaved, so a busy machine slows both alike.

    Each step is Trainer's own `training_step` (forward, loss, backward) plus an AdamW step, on
    the batches each side's Trainer data loader makes (random for the straightforward side,
    grouped by length for the project); the first step of each side is not timed.
    """
    import torch

    sides = {}
    for side in ("straightforward", "project"):
        trainer, dataset = build(options, side, "train", options.steps * options.batch_size * 4)
        trainer.current_gradient_accumulation_steps = 1  # set by train(), which is not used here
        trainable = [p for p in trainer.model.parameters() if p.requires_grad]
        sides[side] = {
            "trainer": trainer,
            "batches": iter(trainer.get_train_dataloader()),
            "optimizer": torch.optim.AdamW(trainable, lr=5e-5),
            "seconds": 0.0,
            "tokens": 0,
        }
    for step in range(options.steps):
        for side in (("straightforward", "project") if step % 2 else ("project", "straightforward")):
            state = sides[side]
            batch = next(state["batches"])
            started = time.perf_counter()
            state["trainer"].training_step(state["trainer"].model, batch)
            state["optimizer"].step()
            state["optimizer"].zero_grad()
            if step > 0:
                state["seconds"] += time.perf_counter() - started
                state["tokens"] += batch["input_ids"].numel()
    return {
        side: {
            "examples_per_second": (options.steps - 1) * options.batch_size / state["seconds"],
            "seconds": state["seconds"],
            "tokens_per_batch": state["tokens"] / (options.steps - 1),
        }
        for side, state in sides.items()
    }


def measure_evaluation(options, side: str) -> dict:
    """Peak resident memory growth of `evaluate()` on one side, in a process of its own."""
    trainer, dataset = build(options, side, "validation", options.eval_examples)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident memory (VmHWM)
    before = rss_kib("VmRSS")
    metrics = trainer.evaluate()
    return {"eval_peak_mib": (rss_kib("VmHWM") - before) / 1024, "examples": len(dataset),
            "accuracy": metrics["eval_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="../shared/models/gpt2-tokenizer")
    parser.add_argument("--data", default="../shared/data/rt_polarity/hf_split_derived")
    parser.add_argument("--steps", type=int, default=16, help="training steps per side (the first is not timed)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_examples", type=int, default=128, help="validation texts evaluated per side")
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--trainable", default="last_block")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.part:
        result = measure_training(options) if options.part == "train" else measure_evaluation(options, options.part)
        print(json.dumps(result))
        return
    results = {}
    for part in ("train", "straightforward", "project"):
        command = [sys.executable, __file__, *sys.argv[1:], "--part", part]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode != 0:
            sys.exit(f"{part} failed:\n{done.stderr[-3000:]}")
        results[part] = json.loads(done.stdout.strip().splitlines()[-1])
        print(part, results[part], flush=True)
    train = results["train"]
    speed = train["project"]["examples_per_second"] / train["straightforward"]["examples_per_second"]
    memory = results["straightforward"]["eval_peak_mib"] / max(results["project"]["eval_peak_mib"], 1e-6)
    print(
        f"\ntraining throughput ({options.steps - 1} timed steps of {options.batch_size} per side): straightforward "
        f"{train['straightforward']['examples_per_second']:.2f} examples/s, project "
        f"{train['project']['examples_per_second']:.2f} examples/s: {speed:.2f}x"
    )
    print(
        f"evaluation peak memory ({options.eval_examples} validation texts): straightforward "
        f"{results['straightforward']['eval_peak_mib']:.0f} MiB, project "
        f"{results['project']['eval_peak_mib']:.0f} MiB: {memory:.1f}x lower"
    )


if __name__ == "__main__":
    main()
