"""Does the precision chosen for the machine cost accuracy? Each recipe's learning setting, 3 seeds,
in fp32 (`--bf16 false`) and in the default precision (bf16 where the CPU has native bf16), side by
side: the test figure of each seed, the mean and the spread (max - min) of each side.

    python benchmarks/precision_accuracy.py [--recipes spam,classify,instruction] [--seeds 1,2,3]

The settings are the learning tests' (tests/e2e), which learn in minutes on CPU:
- spam: the tiny random-init GPT-2 (2 x 128, GPT-2's tokenizer), every parameter, lr 1e-3, 3 epochs;
  test accuracy;
- classify: label-token on rotten_tomatoes, a tiny GPT-2 with a 2000-token vocabulary learnt from
  the training texts, 4000 training texts, 1000 test texts, 3 epochs at lr 1e-3; test accuracy;
- instruction: the book's data, a tiny GPT-2 with a 1000-token vocabulary learnt from the
  entries, every parameter, 3 epochs at lr 1e-3, greedy test answers of up to 64 tokens; test ROUGE-L.
Each run is its own process, one thread (OMP_NUM_THREADS=1): the figures do not depend on the load.
On a CPU without native bf16 both sides are fp32 (the default is fp32 there), which the plan says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
sys.path.insert(0, str(PROJECT))
METRIC = {"spam": "test_accuracy", "classify": "test_accuracy", "instruction": "test_rougeL"}


def balanced(rows: list[dict], count: int) -> list[dict]:
    negative = [row for row in rows if row["label"] == 0][: count // 2]
    positive = [row for row in rows if row["label"] == 1][: count // 2]
    return [row for pair in zip(positive, negative) for row in pair]


def prepare(recipe: str, folder: Path) -> list[str]:
    """The recipe's learning-test flags (data and model written into `folder`)."""
    from hf_finetune import tiny

    if recipe == "spam":
        model = folder / "tiny-gpt2"
        if not model.exists():
            tiny.main(["--tokenizer", str(SHARED / "models" / "gpt2-tokenizer"), "--output", str(model)])
        return ["recipes/spam.py", "--model_name_or_path", str(model), "--dataset",
                str(SHARED / "data" / "sms_spam_collection" / "smsspamcollection.zip"), "--trainable", "all",
                "--learning_rate", "1e-3", "--num_train_epochs", "3", "--save_strategy", "no"]  # fmt: skip
    if recipe == "classify":
        source = SHARED / "data" / "rt_polarity" / "hf_split_derived"
        splits = {name: [json.loads(line) for line in (source / f"{name}.jsonl").read_text(encoding="utf-8").split("\n")
                         if line] for name in ("train", "validation", "test")}  # fmt: skip
        data = folder / "rt"
        data.mkdir(exist_ok=True)
        for name, count in (("train", 4000), ("validation", 32), ("test", 1000)):
            (data / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in balanced(splits[name], count)),
                                                encoding="utf-8")  # fmt: skip
        texts = folder / "rt_texts.txt"
        texts.write_text("\n".join(row["text"] for row in splits["train"]), encoding="utf-8")
        model = folder / "tiny-2k"
        if not model.exists():
            tiny.main(["--train_tokenizer_on", str(texts), "--vocab_size", "2000", "--output", str(model)])
        return ["recipes/classify.py", "--dataset", str(data), "--class_names", "neg,pos", "--model_name_or_path",
                str(model), "--trainable", "all", "--learning_rate", "1e-3", "--warmup_steps", "50", "--max_length",
                "64", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "256",
                "--num_train_epochs", "3", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    from hf_finetune.methods.text.prompt import format_example

    data = SHARED / "data" / "llms_from_scratch_instruction" / "instruction-data.json"
    texts = folder / "instruction_texts.txt"
    texts.write_text("\n".join(format_example(entry) for entry in json.loads(data.read_text())))
    model = folder / "tiny-1k"
    if not model.exists():
        tiny.main(["--train_tokenizer_on", str(texts), "--vocab_size", "1000", "--output", str(model)])
    return ["recipes/instruction.py", "--dataset", str(data), "--model_name_or_path", str(model),
            "--num_train_epochs", "3", "--learning_rate", "1e-3", "--eval_steps", "50", "--save_strategy", "no",
            "--max_new_tokens", "64", "--generation_batch_size", "64"]  # fmt: skip


def run(argv: list[str], seed: int, precision: list[str], output: Path) -> tuple[dict, str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv, "--seed", str(seed), *precision, "--output_dir", str(output),
                           "--disable_tqdm", "true", "--report_to", "none"], cwd=PROJECT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1",
                               "MKL_NUM_THREADS": "1"})  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} seed {seed} {precision}: {done.stderr[-2000:]}")
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith("precision"))
    return json.loads((output / "all_results.json").read_text()), " ".join(line.split()[1:]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="spam,classify,instruction")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    print(f"load average {os.getloadavg()[0]:.2f}; one thread per run", flush=True)
    folder = Path(tempfile.mkdtemp())
    report = {}
    for recipe in args.recipes.split(","):
        argv = prepare(recipe, folder)
        sides = {}
        for name, flags in (("fp32 (--bf16 false)", ["--bf16", "false"]), ("default", [])):
            figures, said = [], ""
            for seed in seeds:
                results, said, seconds = run(argv, seed, flags, folder / f"{recipe}-{seed}-{bool(flags)}")
                figures.append(results[METRIC[recipe]])
                print(f"{recipe} {name} seed {seed}: {METRIC[recipe]} {figures[-1]:.4f} ({seconds:.0f} s)", flush=True)
            sides[name] = {"precision": said.split(",")[0], METRIC[recipe]: [round(f, 4) for f in figures],
                           "mean": round(statistics.mean(figures), 4), "spread": round(max(figures) - min(figures), 4)}  # fmt: skip
        fp32, default = sides.values()
        difference = default["mean"] - fp32["mean"]
        widest = max(fp32["spread"], default["spread"])
        report[recipe] = {**sides, "difference of the means": round(difference, 4),
                          "within the seed spread": abs(difference) <= widest}  # fmt: skip
        print(recipe, json.dumps(report[recipe]), flush=True)
    report["load_at_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
