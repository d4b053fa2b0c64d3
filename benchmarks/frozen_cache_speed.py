"""--cache_frozen end to end, in one run: the default spam recipe (cached, and --cache_frozen false)
against the tutorial's own procedure; the label-token default, cached against uncached.

Every side is timed from reading the data to its final figures, each in the same process one
after another (so a shared machine's load falls on all of them; say the load you ran under):

- tutorial (chapter 6 of the book, nothing added): every text padded to the longest training
  text, batch 8, AdamW; every 50 steps the loss over 5 batches of the training and validation
  loaders, after each epoch the accuracy over 5 batches of each, at the end the accuracy over all
  of train, validation and test;
- `recipes/spam.py` with its defaults (evaluation on validation and a 256-text training sample
  every 50 steps and at each epoch's end, final figures on all splits, model saved), with
  `--cache_frozen false` and with the cache (the default);
- `hf-finetune classify` (label-token on rotten_tomatoes) with and without the cache.

Same random-init model (`--shape`, gpt2 by default), real tokenizer and data, `--trainable
last_block`, fp32. `--epochs` shortens every side alike (default: each recipe's own, 5 and 3).

With `--accuracy`, a tiny GPT-2 is first trained fully on spam (so its trunk has learnt
something), then fine-tuned with `last_block` cached and uncached, 3 seeds each: mean test
accuracy of each.

    OMP_NUM_THREADS=1 python benchmarks/frozen_cache_speed.py --only spam [--epochs 1] [--accuracy]
    OMP_NUM_THREADS=1 python benchmarks/frozen_cache_speed.py --only accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_finetune import tiny
from hf_finetune.classify import DEFAULTS as CLASSIFY
from hf_finetune.classify import main as classify
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy
from hf_finetune.methods.classify.data import DataArguments, load_classification_data
from hf_finetune.recipes.spam import DEFAULTS as SPAM
from hf_finetune.recipes.spam import main as spam

SHARED = Path(__file__).resolve().parents[2] / "shared"


def write_model(shape: str, tokenizer: str, folder: Path) -> Path:
    output = folder / f"model-{shape}"
    tiny.main(["--tokenizer", tokenizer, "--shape", shape, "--output", str(output), "--seed", "0"])
    return output


def timed(run) -> tuple[dict, float, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    figures = run()
    return figures, time.perf_counter() - started, time.process_time() - cpu_started


def tutorial(model_dir: Path, data: str, epochs: int, seed: int = 123) -> dict:
    """The book's train_classifier_simple with its evaluation schedule, over our data loading."""
    torch.manual_seed(seed)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), seed=seed, report_to="none")
    splits = load_classification_data(DataArguments(dataset=data, balance=True, split="0.7,0.1,0.2"), args)
    tokenizer = load_tokenizer(str(model_dir))
    model = load_classifier(str(model_dir), splits.label_names, tokenizer)
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    encoded = {name: tokenizer(list(split["text"]))["input_ids"] for name, split in splits.splits.items()}
    longest = max(len(ids) for ids in encoded["train"])

    def loader(name: str, shuffle: bool):
        ids = torch.tensor([ids[:longest] + [tokenizer.pad_token_id] * (longest - len(ids[:longest])) for ids in encoded[name]])
        labels = torch.tensor(list(splits.splits[name]["label"]))
        dataset = torch.utils.data.TensorDataset(ids, labels)
        return torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=shuffle, drop_last=shuffle)

    train, validation, test = loader("train", True), loader("validation", False), loader("test", False)

    def logits(ids):
        return model(input_ids=ids).logits

    def loss_over(batches, limit):
        losses = [torch.nn.functional.cross_entropy(logits(i), y).item() for n, (i, y) in enumerate(batches) if n < limit]
        return sum(losses) / len(losses)

    def accuracy_over(batches, limit=None):
        right = seen = 0
        model.eval()
        with torch.no_grad():
            for n, (ids, labels) in enumerate(batches):
                if limit is not None and n >= limit:
                    break
                right += int((logits(ids).argmax(-1) == labels).sum())
                seen += len(labels)
        return right / seen

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5, weight_decay=0.1)
    step = -1
    for _ in range(epochs):
        model.train()
        for ids, labels in train:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(logits(ids), labels).backward()
            optimizer.step()
            step += 1
            if step % 50 == 0:
                model.eval()
                with torch.no_grad():
                    loss_over(train, 5), loss_over(validation, 5)
                model.train()
        accuracy_over(train, 5), accuracy_over(validation, 5)
    return {"train_accuracy": accuracy_over(train), "eval_accuracy": accuracy_over(validation),
            "test_accuracy": accuracy_over(test), "padded_to": longest}  # fmt: skip


def run_recipe(main, argv: list[str]) -> dict:
    output = Path(tempfile.mkdtemp()) / "run"
    return main([*argv, "--output_dir", str(output), "--disable_tqdm", "true", "--save_strategy", "no"])


def spam_sides(model_dir: Path, data: str, epochs: int) -> dict:
    flags = ["--model_name_or_path", str(model_dir), "--dataset", data, "--num_train_epochs", str(epochs)]
    figures = {}
    for name, run in (
        ("tutorial", lambda: tutorial(model_dir, data, epochs)),
        ("recipe --cache_frozen false", lambda: run_recipe(spam, [*flags, "--cache_frozen", "false"])),
        ("recipe (cache)", lambda: run_recipe(spam, flags)),
    ):
        results, seconds, cpu = timed(run)
        figures[name] = {"wall_s": round(seconds, 1), "cpu_s": round(cpu, 1),
                         "test_accuracy": round(results["test_accuracy"], 4),
                         **({"cache_build_s": results["frozen_cache_build_seconds"]} if results.get("frozen_cache") else {})}  # fmt: skip
        print(name, figures[name], flush=True)
    tutorial_side, uncached, cached = (figures[k] for k in figures)
    ratios = {f"{key} vs tutorial": round(tutorial_side[key] / cached[key], 2) for key in ("wall_s", "cpu_s")}
    ratios |= {f"{key} vs --cache_frozen false": round(uncached[key] / cached[key], 2) for key in ("wall_s", "cpu_s")}
    return {"epochs": epochs, "sides": figures, "speed-up of the cache": ratios}


def label_token_sides(model_dir: Path, data: str, epochs: int, fraction: float, folder: Path) -> dict:
    """With `fraction` < 1: every (1/fraction)-th text of each split, and evaluations as many steps apart in
    proportion (the recipe's 250 steps scaled), so evaluation weighs on training as in the full run."""
    eval_steps = max(1, round(CLASSIFY["eval_steps"] * fraction))
    if fraction < 1:
        subset = folder / "rt-subset"
        subset.mkdir()
        for split in ("train", "validation", "test"):
            # split("\n"), not splitlines(): a review may hold U+2028, which splitlines() also cuts at
            lines = [line for line in (Path(data) / f"{split}.jsonl").read_text(encoding="utf-8").split("\n") if line]
            every = round(1 / fraction)  # every k-th line: the files are ordered by label
            (subset / f"{split}.jsonl").write_text("\n".join(lines[::every]) + "\n", encoding="utf-8")
        data = str(subset)
    flags = ["--model_name_or_path", str(model_dir), "--dataset", data, "--num_train_epochs", str(epochs),
             "--eval_steps", str(eval_steps)]  # fmt: skip
    figures = {}
    for name, extra in (("--cache_frozen false", ["--cache_frozen", "false"]), ("cache", [])):
        results, seconds, cpu = timed(lambda: run_recipe(classify, [*flags, *extra]))
        figures[name] = {"wall_s": round(seconds, 1), "cpu_s": round(cpu, 1), "test_accuracy": round(results["test_accuracy"], 4)}
        print(name, figures[name], flush=True)
    uncached, cached = figures.values()
    return {"epochs": epochs, "data fraction": fraction, "eval_steps": eval_steps, "sides": figures,
            "speed-up of the cache": {key: round(uncached[key] / cached[key], 2) for key in ("wall_s", "cpu_s")}}  # fmt: skip


def accuracy_check(tokenizer: str, data: str, folder: Path, seeds=(1, 2, 3)) -> dict:
    """A tiny GPT-2 trained fully first, then last_block fine-tuning cached vs uncached (dropout on)."""
    base = write_model("tiny", tokenizer, folder)
    trunk = folder / "trunk"
    spam(["--model_name_or_path", str(base), "--dataset", data, "--trainable", "all", "--learning_rate", "1e-3",
          "--num_train_epochs", "3", "--output_dir", str(trunk), "--disable_tqdm", "true", "--save_strategy", "no"])  # fmt: skip
    accuracies = {}
    for cached in ("false", "true"):
        accuracies[cached] = [
            run_recipe(spam, ["--model_name_or_path", str(trunk), "--dataset", data, "--seed", str(seed),
                              "--learning_rate", "5e-4", "--cache_frozen", cached])["test_accuracy"]  # fmt: skip
            for seed in seeds
        ]
    return {f"--cache_frozen {k}": {"test_accuracy": [round(a, 4) for a in v], "mean": round(statistics.mean(v), 4)}
            for k, v in accuracies.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default=str(SHARED / "models" / "gpt2-tokenizer"))
    parser.add_argument("--spam_data", default=str(SHARED / "data" / "sms_spam_collection" / "smsspamcollection.zip"))
    parser.add_argument("--rt_data", default=str(SHARED / "data" / "rt_polarity" / "hf_split_derived"))
    parser.add_argument("--shape", default="gpt2", choices=sorted(tiny.SHAPES))
    parser.add_argument("--epochs", type=int, help="every side's epochs (default: the recipes' own, 5 and 3)")
    parser.add_argument("--rt_fraction", type=float, default=1.0,
                        help="label-token: this share of each rotten_tomatoes split, every k-th text (eval_steps scaled alike)")
    parser.add_argument("--only", choices=("spam", "label-token", "accuracy"), help="one comparison only")
    parser.add_argument("--accuracy", action="store_true", help="also the 3-seed accuracy check on a tiny model")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    report = {"shape": args.shape, "threads": torch.get_num_threads(), "load_at_start": os.getloadavg()}
    model_dir = write_model(args.shape, args.tokenizer, folder) if args.only != "accuracy" else None
    if args.only in (None, "spam"):
        report["spam"] = spam_sides(model_dir, args.spam_data, args.epochs or SPAM["num_train_epochs"])
    if args.only in (None, "label-token"):
        report["label-token"] = label_token_sides(model_dir, args.rt_data, args.epochs or 3, args.rt_fraction, folder)
    if args.accuracy or args.only == "accuracy":
        report["accuracy (tiny, trunk trained first, 3 seeds)"] = accuracy_check(args.tokenizer, args.spam_data, folder)
    report["load_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
