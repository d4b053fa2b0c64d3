"""The targets of the frozen cache and of the precision chosen for the machine, end to end, in one run:

- spam: the whole default run (`python recipes/spam.py` with its defaults: the frozen cache, the
  precision chosen for this machine, five epochs with evaluations every 50 steps and at each epoch's
  end, final figures, checkpoints and the model saved), timed from process start to exit, against the
  tutorial (chapter 6 of the book, fp32, nothing added: every text padded to the longest training
  text, batch 8, AdamW; every 50 steps the loss over 5 batches of train and validation, after each
  epoch the accuracy over 5 batches of each, at the end the accuracy on all splits) both ways: its
  training loop alone (the steps) and its whole procedure. `--quick` measures the tutorial's first
  30 steps and 10 batches of each final split and multiplies (every step has the same shape);
  without it the tutorial runs whole (about an hour). `--uncached` adds `--cache_frozen false`.
- label-token: `hf-finetune classify` (rotten_tomatoes, 3 epochs), cached against `--cache_frozen
  false`, each side's full default run projected from --measured_steps steps of it (the uncached
  one takes hours); `--full` runs the cached side whole.
- `--accuracy`: a tiny GPT-2 trained fully on spam first, then fine-tuned with `last_block` cached
  and uncached, 3 seeds each: mean test accuracy of each.

Same random-init model (`--shape`, gpt2 by default), real tokenizer and data, `--trainable
last_block` on every side. Wall and CPU time (the recipes' processes' own), load average at start
and end: on a shared machine read the CPU times.

    python benchmarks/frozen_cache_speed.py --only spam [--quick] [--uncached]
    python benchmarks/frozen_cache_speed.py --only label-token [--measured_steps 60] [--full]
    OMP_NUM_THREADS=1 python benchmarks/frozen_cache_speed.py --only accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_finetune import tiny
from hf_finetune.classify import DEFAULTS as CLASSIFY
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy
from hf_finetune.methods.classify.data import DataArguments, load_classification_data
from hf_finetune.recipes.spam import DEFAULTS as SPAM
from hf_finetune.recipes.spam import main as spam

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"


def write_model(shape: str, tokenizer: str, folder: Path) -> Path:
    output = folder / f"model-{shape}"
    tiny.main(["--tokenizer", tokenizer, "--shape", shape, "--output", str(output), "--seed", "0"])
    return output


class Clock:
    """Wall and CPU seconds spent in named parts."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def part(self, name: str, run):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run()
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - started
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu_started
        self.count[name] = self.count.get(name, 0) + 1
        return result


def tutorial(model_dir: Path, data: str, epochs: int, seed: int = 123, quick_steps: int | None = None,
             quick_batches: int | None = None) -> dict:  # fmt: skip
    """The book's train_classifier_simple with its evaluation schedule, over our data loading, fp32
    as the book. Every part is timed apart: the training steps alone (the bare loop), the loss every
    50 steps, the accuracy after each epoch, the final accuracy on every split. With `quick_steps`,
    only that many steps run and the final accuracy reads `quick_batches` batches per split; every
    step has the same shape (each text padded to the longest), so the full run's parts are the
    measured time per step, per evaluation and per batch times their counts."""
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

    clock = Clock()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5, weight_decay=0.1)

    def train_step(ids, labels):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits(ids), labels).backward()
        optimizer.step()

    def periodic_evaluation():
        model.eval()
        with torch.no_grad():
            loss_over(train, 5), loss_over(validation, 5)
        model.train()

    steps_per_epoch = len(train)
    step = -1
    for _ in range(1 if quick_steps else epochs):
        model.train()
        for ids, labels in train:
            if quick_steps and step + 1 == quick_steps:
                break
            clock.part("step", lambda: train_step(ids, labels))
            step += 1
            if step % 50 == 0:
                clock.part("loss every 50 steps", periodic_evaluation)
        clock.part("accuracy after each epoch", lambda: (accuracy_over(train, 5), accuracy_over(validation, 5)))
    accuracies = {name: clock.part(f"final accuracy {name}", lambda batches=batches: accuracy_over(batches, quick_batches))
                  for name, batches in (("train", train), ("eval", validation), ("test", test))}  # fmt: skip
    # The full run's parts: per-part time x how often the full run has it.
    total_steps = epochs * steps_per_epoch
    full_counts = {"step": total_steps, "loss every 50 steps": (total_steps - 1) // 50 + 1,
                   "accuracy after each epoch": epochs}  # fmt: skip
    for name, batches in (("train", train), ("eval", validation), ("test", test)):
        full_counts[f"final accuracy {name}"] = len(batches) / min(len(batches), quick_batches or len(batches))
    parts = {name: {"wall_s": clock.wall[name] / clock.count[name] * full_counts[name],
                    "cpu_s": clock.cpu[name] / clock.count[name] * full_counts[name],
                    "measured": f"{clock.count[name]} of {full_counts[name]:g}" if name in ("step", "loss every 50 steps",
                                "accuracy after each epoch") else "all" if not quick_batches else f"{quick_batches} batches"}
             for name in full_counts}  # fmt: skip
    bare = parts["step"]
    return {
        "padded_to": longest,
        "steps": total_steps,
        "parts": parts,
        "training loop alone": {"wall_s": bare["wall_s"], "cpu_s": bare["cpu_s"]},
        "whole procedure": {key: sum(part[key] for part in parts.values()) for key in ("wall_s", "cpu_s")},
        "test_accuracy": accuracies["test"],
        "extrapolated": bool(quick_steps),
    }


def whole_run(script: str, argv: list[str]) -> dict:
    """A recipe as a user runs it, `python recipes/NAME.py` in a process of its own, timed from start to
    exit (interpreter, imports, data, the cache, training, final figures, saving)."""
    output = Path(tempfile.mkdtemp()) / "run"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PROJECT / "recipes" / script), *argv, "--output_dir", str(output),
                           "--disable_tqdm", "true"], env={**os.environ, "PYTHONPATH": str(PROJECT)},
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed: {done.stderr[-2000:]}")
    results = json.loads((output / "all_results.json").read_text())
    plan = done.stdout.split("plan:")[1].split("\n\n")[0]
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "results": results, "plan": plan}  # fmt: skip


def spam_sides(model_dir: Path, data: str, epochs: int, quick: bool, uncached: bool) -> dict:
    """The whole default spam run against the tutorial: its training loop alone, and its whole procedure."""
    flags = ["--model_name_or_path", str(model_dir), "--dataset", data, "--num_train_epochs", str(epochs)]
    sides = {}
    runs = [("recipes/spam.py (defaults: cache, precision for this machine)", lambda: whole_run("spam.py", flags))]
    if uncached:
        runs.append(("recipes/spam.py --cache_frozen false", lambda: whole_run("spam.py", [*flags, "--cache_frozen", "false"])))
    for name, run in runs:
        figures = run()
        results = figures.pop("results")
        plan = figures.pop("plan")
        precision = next(line for line in plan.splitlines() if line.strip().startswith("precision"))
        sides[name] = {**{k: round(v, 1) for k, v in figures.items()}, "test_accuracy": round(results["test_accuracy"], 4),
                       "frozen_cache_build_s": results.get("frozen_cache_build_seconds"),
                       "train_runtime_s": results["train_runtime_seconds"],
                       "model_flops_utilization": results.get("model_flops_utilization"),
                       "precision": " ".join(precision.split()[1:])}  # fmt: skip
        print(name, json.dumps(sides[name]), flush=True)
    book = tutorial(model_dir, data, epochs, quick_steps=30 if quick else None, quick_batches=10 if quick else None)
    for key in ("training loop alone", "whole procedure"):
        sides[f"tutorial, {key} (fp32)"] = {k: round(v, 1) for k, v in book[key].items()}
    print("tutorial", json.dumps({k: v for k, v in book.items() if k != "parts"}), flush=True)
    ours = sides[runs[0][0]]
    ratios = {f"{key.split(', ')[1]} / whole default run": {
        unit: round(sides[key][unit] / ours[unit], 2) for unit in ("wall_s", "cpu_s")}
        for key in sides if key.startswith("tutorial")}  # fmt: skip
    return {"epochs": epochs, "tutorial padded to": book["padded_to"], "tutorial steps": book["steps"],
            "tutorial extrapolated from 30 steps and 10 batches per split": book["extrapolated"],
            "tutorial parts": {k: {kk: (round(vv, 1) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                               for k, v in book["parts"].items()},
            "tutorial test accuracy (fp32)": round(book["test_accuracy"], 4),
            "sides": sides, "ratios (target: >= 12x with native bf16, >= 8x without)": ratios}  # fmt: skip


def label_token_sides(model_dir: Path, data: str, epochs: int, fraction: float, folder: Path, measured_steps: int,
                      full: bool) -> dict:  # fmt: skip
    """The label-token default, cached against --cache_frozen false, each a whole run in its own process.

    The uncached side would take hours, so each side runs `measured_steps` steps with one evaluation
    (at the last step) and everything else of the default run (startup, the cache, final figures),
    and its full default run is projected from what it measured: the whole run's time, plus the
    remaining steps at the measured time per step (all that happens between two steps), plus the
    remaining evaluations at the measured evaluation's time (Trainer logs its runtime). With
    `full`, the cached side runs whole. With `fraction` < 1: every (1/fraction)-th text of each
    split, eval_steps scaled alike."""
    eval_steps = max(1, round(CLASSIFY["eval_steps"] * fraction))
    if fraction < 1:
        subset = folder / "rt-subset"
        subset.mkdir(exist_ok=True)
        for split in ("train", "validation", "test"):
            # split("\n"), not splitlines(): a review may hold U+2028, which splitlines() also cuts at
            lines = [line for line in (Path(data) / f"{split}.jsonl").read_text(encoding="utf-8").split("\n") if line]
            every = round(1 / fraction)  # every k-th line: the files are ordered by label
            (subset / f"{split}.jsonl").write_text("\n".join(lines[::every]) + "\n", encoding="utf-8")
        data = str(subset)
    train_size = sum(1 for line in (Path(data) / "train.jsonl").read_text(encoding="utf-8").split("\n") if line.strip())
    steps_per_epoch = -(-train_size // CLASSIFY["per_device_train_batch_size"])
    total_steps = epochs * steps_per_epoch
    evaluations = len({step for step in range(eval_steps, total_steps + 1, eval_steps)}
                      | {steps_per_epoch * epoch for epoch in range(1, epochs + 1)})  # fmt: skip
    flags = ["--model_name_or_path", str(model_dir), "--dataset", data, "--num_train_epochs", str(epochs),
             "--eval_steps", str(eval_steps), "--save_strategy", "no"]  # fmt: skip
    sides = {}
    for name, extra in (("--cache_frozen false", ["--cache_frozen", "false"]), ("cache (default)", [])):
        whole = full and not extra
        run_flags = [*flags, *extra] if whole else [*flags, *extra, "--max_steps", str(measured_steps),
                                                      "--eval_steps", str(measured_steps)]  # fmt: skip
        figures = whole_run("classify.py", run_flags)
        results = figures["results"]
        side = {"measured_wall_s": round(figures["wall_s"], 1), "measured_cpu_s": round(figures["cpu_s"], 1),
                "frozen_cache_build_s": results.get("frozen_cache_build_seconds"),
                "model_flops_utilization": results.get("model_flops_utilization"),
                "test_accuracy": round(results["test_accuracy"], 4)}  # fmt: skip
        if whole:
            side |= {"wall_s": side["measured_wall_s"], "cpu_s": side["measured_cpu_s"], "projected": False}
        else:
            evaluated = [point for point in results["history"] if "eval_validation_runtime" in point]
            evaluation_s = sum(evaluated[-1].get(f"eval_{name}_runtime", 0.0) for name in ("validation", "train"))
            per_step = (results["train_runtime_seconds"] - evaluation_s) / measured_steps
            cpu_share = figures["cpu_s"] / figures["wall_s"]  # the run's CPU per wall second, for the projection
            added = (total_steps - measured_steps) * per_step + (evaluations - 1) * evaluation_s
            side |= {"per_step_s": round(per_step, 4), "evaluation_s": round(evaluation_s, 2),
                     "wall_s": round(figures["wall_s"] + added, 1), "cpu_s": round(figures["cpu_s"] + added * cpu_share, 1),
                     "projected": True}  # fmt: skip
        sides[name] = side
        print(name, json.dumps(side), flush=True)
    uncached, cached = sides.values()
    return {"epochs": epochs, "data fraction": fraction, "train texts": train_size, "steps": total_steps,
            "eval_steps": eval_steps, "evaluations": evaluations, "measured steps": measured_steps, "sides": sides,
            "speed-up of the cache (target >= 5x)": {key: round(uncached[key] / cached[key], 2) for key in ("wall_s", "cpu_s")}}  # fmt: skip


def run_recipe(main, argv: list[str]) -> dict:
    output = Path(tempfile.mkdtemp()) / "run"
    return main([*argv, "--output_dir", str(output), "--disable_tqdm", "true", "--save_strategy", "no"])


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
    parser.add_argument("--quick", action="store_true",
                        help="spam: the tutorial's full run from 30 steps and 10 batches per split (every step has "
                             "the same shape); label-token: see --project")  # fmt: skip
    parser.add_argument("--uncached", action="store_true", help="spam: also the whole run with --cache_frozen false")
    parser.add_argument("--measured_steps", type=int, default=60,
                        help="label-token: steps each side runs; its full run is projected from them")
    parser.add_argument("--full", action="store_true", help="label-token: run the cached side whole")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    report = {"shape": args.shape, "threads": torch.get_num_threads(), "load_at_start": os.getloadavg()}
    model_dir = write_model(args.shape, args.tokenizer, folder) if args.only != "accuracy" else None
    if args.only in (None, "spam"):
        report["spam"] = spam_sides(model_dir, args.spam_data, args.epochs or SPAM["num_train_epochs"], args.quick,
                                    args.uncached)
    if args.only in (None, "label-token"):
        report["label-token"] = label_token_sides(model_dir, args.rt_data, args.epochs or 3, args.rt_fraction, folder,
                                                  args.measured_steps, args.full)
    if args.accuracy or args.only == "accuracy":
        report["accuracy (tiny, trunk trained first, 3 seeds)"] = accuracy_check(args.tokenizer, args.spam_data, folder)
    report["load_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
