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

Each measurement runs in its own process, so one side's memory does not count for the other.
Evaluation peak memory is the growth of the process's peak resident memory during `evaluate()`.

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


def measure(options) -> dict:
    """One measurement (train or eval, straightforward or project) in this process."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from hf_finetune.label_token import LabelTokenCollator, encode_label_token, resolve_label_words
    from hf_finetune.label_token_model import LabelTokenTrainer, apply_label_token_policy, label_token_metrics
    from hf_finetune.modeling import TrainablePolicy, load_tokenizer
    import datasets

    torch.manual_seed(0)
    tokenizer = load_tokenizer(options.tokenizer)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer)))
    model.config.pad_token_id = tokenizer.pad_token_id
    apply_label_token_policy(model, TrainablePolicy.parse(options.trainable))
    words = resolve_label_words(tokenizer, ["neg", "pos"])
    split = "train" if options.part.startswith("train") else "validation"
    limit = options.steps * options.batch_size * 4 if split == "train" else options.eval_examples
    texts, labels = load_texts(Path(options.data), split, limit)

    class StepClock(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as output:
        args = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=options.batch_size,
            per_device_eval_batch_size=options.eval_batch_size,
            max_steps=options.steps,
            learning_rate=5e-5,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_pin_memory=False,
            seed=0,
            remove_unused_columns=False,
            train_sampling_strategy="group_by_length" if options.part.endswith("project") else "random",
        )
        clock = StepClock()
        if options.part.endswith("straightforward"):
            dataset = tutorial_encode(tokenizer, texts, labels, [ids[0] for ids in words.token_ids])

            def tutorial_metrics(prediction):  # the tutorial's compute_metric: argmax at the label position
                logits, label_ids = prediction
                predicted = logits[:, :-1].argmax(-1)
                mask = label_ids[:, 1:] != -100
                return {"accuracy": float((predicted[mask] == label_ids[:, 1:][mask]).mean())}

            trainer = Trainer(
                model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
                data_collator=default_data_collator, compute_metrics=tutorial_metrics, callbacks=[clock],
            )
            tokens = TUTORIAL_MAX_LEN * len(dataset)
        else:
            encoded, _ = encode_label_token(
                datasets.DatasetDict({"data": datasets.Dataset.from_dict({"text": texts, "label": labels})}),
                tokenizer, words, max_length=1024,
            )
            dataset = encoded["data"]
            trainer = LabelTokenTrainer(
                model=model, args=args, train_dataset=dataset, eval_dataset=dataset,
                data_collator=LabelTokenCollator(tokenizer.pad_token_id),
                compute_metrics=lambda p: label_token_metrics(p, words, ["neg", "pos"]),
                callbacks=[clock], label_words=words, pad_token_id=tokenizer.pad_token_id,
            )
            tokens = sum(len(ids) for ids in dataset["input_ids"])
        if options.part.startswith("train"):
            trainer.train()
            # The first step pays one-off costs (allocations, thread start-up): time the others.
            seconds = clock.times[-1] - clock.times[0]
            return {"examples_per_second": (options.steps - 1) * options.batch_size / seconds, "seconds": seconds}
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident memory (VmHWM)
        before = rss_kib("VmRSS")
        metrics = trainer.evaluate()
        return {
            "eval_peak_mib": (rss_kib("VmHWM") - before) / 1024,
            "examples": len(dataset),
            "padded_or_whole_tokens": tokens,
            "accuracy": metrics["eval_accuracy"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="../shared/models/gpt2-tokenizer")
    parser.add_argument("--data", default="../shared/data/rt_polarity/hf_split_derived")
    parser.add_argument("--steps", type=int, default=12, help="training steps per side (the first is not timed)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--eval_examples", type=int, default=128, help="validation texts evaluated per side")
    parser.add_argument("--eval_batch_size", type=int, default=32)
    parser.add_argument("--trainable", default="last_block")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.part:
        print(json.dumps(measure(options)))
        return
    results = {}
    for part in ("train-straightforward", "train-project", "eval-straightforward", "eval-project"):
        command = [sys.executable, __file__, *sys.argv[1:], "--part", part]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode != 0:
            sys.exit(f"{part} failed:\n{done.stderr[-3000:]}")
        results[part] = json.loads(done.stdout.strip().splitlines()[-1])
        print(part, results[part], flush=True)
    speed = results["train-project"]["examples_per_second"] / results["train-straightforward"]["examples_per_second"]
    memory = results["eval-straightforward"]["eval_peak_mib"] / max(results["eval-project"]["eval_peak_mib"], 1e-6)
    print(
        f"\ntraining throughput: straightforward {results['train-straightforward']['examples_per_second']:.2f} "
        f"examples/s, project {results['train-project']['examples_per_second']:.2f} examples/s: {speed:.2f}x"
    )
    print(
        f"evaluation peak memory ({options.eval_examples} texts): straightforward "
        f"{results['eval-straightforward']['eval_peak_mib']:.0f} MiB, project "
        f"{results['eval-project']['eval_peak_mib']:.0f} MiB: {memory:.1f}x lower"
    )


if __name__ == "__main__":
    main()
