"""Every recipe for a few steps on a CUDA device (the machine's default precision, gradient
checkpointing on), each in its own process: step time, tokens/s, MFU and peak memory per method,
and what broke. benchmarks/gpu_check.sh runs it; `--dry` runs the same on CPU with a tiny model and
a slice of each data set, so that CI keeps it runnable.

    bash benchmarks/gpu_check.sh                  # on a CUDA machine: real shapes, random weights
    bash benchmarks/gpu_check.sh --dry            # CPU, tiny model: does every recipe still run?
    python benchmarks/gpu_check.py --steps 10 --recipes spam,instruction --shared ../shared

The models are random-init ones of the recipes' shapes (`python -m hf_finetune.tiny`): GPT-2 (124M)
for spam and classify, GPT-2 medium (355M) for instruction and preference, Bloom-560m for chat;
nothing is downloaded. Data come from --shared (../shared by default: the SMS zip, rotten_tomatoes,
the book's instruction and preference data, the GPT-2 tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # this checkout's hf_finetune, whichever one is installed
RECIPES = ("spam", "classify", "instruction", "chat", "preference")
SHAPES = {"spam": ("gpt2", "gpt2"), "classify": ("gpt2", "gpt2"), "instruction": ("gpt2", "gpt2-medium"),
          "preference": ("gpt2", "gpt2-medium"), "chat": ("bloom", "bloom-560m")}  # fmt: skip
DRY_SLICE = 48  # texts, entries or pairs per split in --dry


def data_flags(recipe: str, shared: Path, folder: Path, dry: bool) -> list[str]:
    """The recipe's data: the real files, or in --dry a slice of each split written to `folder`."""
    data = shared / "data"
    if recipe == "spam":
        source = data / "sms_spam_collection" / "smsspamcollection.zip"
        if not dry:
            return ["--dataset", str(source)]
        import zipfile

        lines = zipfile.ZipFile(source).read("SMSSpamCollection").decode("utf-8").splitlines()
        rows = [line.split("\t", 1) for line in lines if "\t" in line]
        picked = [row for row in rows if row[0] == "ham"][:DRY_SLICE] + [row for row in rows if row[0] == "spam"][:DRY_SLICE]
        path = folder / "sms.jsonl"
        path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for label, text in picked))
        return ["--dataset", str(path), "--balance", "false"]
    if recipe == "classify":
        source = data / "rt_polarity" / "hf_split_derived"
        if not dry:
            return ["--dataset", str(source)]
        sliced = folder / "rt"
        sliced.mkdir(exist_ok=True)
        for split in ("train", "validation", "test"):
            lines = (source / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
            keep = [line for line in lines if line.strip()]
            step = max(1, len(keep) // DRY_SLICE)  # the files are ordered by label: every k-th line
            (sliced / f"{split}.jsonl").write_text("\n".join(keep[::step][:DRY_SLICE]) + "\n", encoding="utf-8")
        return ["--dataset", str(sliced)]
    name = {"instruction": "instruction-data.json", "preference": "instruction-data-with-preference.json"}.get(recipe)
    if name is None:  # chat: its own five conversations
        return []
    source = data / "llms_from_scratch_instruction" / name
    if not dry:
        return ["--dataset", str(source)]
    path = folder / name
    path.write_text(json.dumps(json.loads(source.read_text(encoding="utf-8"))[: 3 * DRY_SLICE]), encoding="utf-8")
    return ["--dataset", str(path)]


def recipe_argv(recipe: str, model: str, shared: Path, folder: Path, steps: int, dry: bool) -> list[str]:
    common = ["--model_name_or_path", model, "--output_dir", str(folder / f"run-{recipe}"), "--max_steps", str(steps),
              "--gradient_checkpointing", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
              "--disable_tqdm", "true", "--overwrite_output_dir"]  # fmt: skip
    own = {
        "spam": [],
        "classify": [],
        "instruction": ["--max_new_tokens", "4", "--sample_max_new_tokens", "4", "--generation_batch_size", "64"],
        "preference": ["--max_new_tokens", "4", "--generation_batch_size", "64", "--drop_identical_pairs", "true"],
        "chat": ["--answers_every_epoch", "false", "--max_new_tokens", "4", "--num_train_epochs", "1"],
    }[recipe]
    return [*common, *own, *data_flags(recipe, shared, folder, dry)]


def run_one(recipe: str, argv: list[str]) -> dict:
    """Run one recipe in this process; its figures as a dict."""
    import importlib

    import torch

    module = importlib.import_module(f"hf_finetune.recipes.{ {'chat': 'spanish_chat'}.get(recipe, recipe)}")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    results = module.main(argv)
    if isinstance(results, list):  # chat: one row per loss method
        results = results[0]
    step_seconds = results["training_step_seconds"] / max(results["training_steps_timed"], 1)
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # fmt: skip
    return {
        "recipe": recipe,
        "steps": results["training_steps_timed"],
        "step_seconds": step_seconds,
        "tokens_per_second": results["training_tokens"] / max(results["training_step_seconds"], 1e-9),
        "mfu": results["model_flops_utilization"],
        "peak_dtype": results["peak_dtype"],
        "peak_memory_gib": peak / 1024**3,
        "memory_kind": "GPU allocated" if torch.cuda.is_available() else "process RSS",
        "run_seconds": time.time() - started,
    }


def make_model(arch: str, shape: str, tokenizer: Path, path: Path, env: dict, in_process: bool) -> str | None:
    """A random-init model of `shape` (hf_finetune.tiny); None, or what went wrong."""
    argv = ["--arch", arch, "--shape", shape, "--tokenizer", str(tokenizer), "--output", str(path)]
    if in_process:
        from hf_finetune import tiny

        try:
            tiny.main(argv)
        except (Exception, SystemExit) as error:  # noqa: BLE001
            return f"{type(error).__name__}: {error}"
        return None
    made = subprocess.run([sys.executable, "-m", "hf_finetune.tiny", *argv], env=env, capture_output=True, text=True)
    return None if made.returncode == 0 else made.stderr[-300:]


def figures_of(recipe: str, argv: list[str]) -> dict:
    """run_one's figures, or what broke."""
    try:
        return run_one(recipe, argv)
    except BaseException as error:  # noqa: BLE001 - everything that broke is the report
        lines = traceback.format_exception(error)
        return {"recipe": recipe, "broke": f"{type(error).__name__}: {str(error).strip()[:300]}",
                "where": "".join(lines[-3:])[-600:]}  # fmt: skip


def in_own_process(recipe: str, argv: list[str], env: dict, folder: Path) -> dict:
    """run_one in a process of its own: its peak memory is its own, and a crash breaks only it."""
    started = time.time()
    done = subprocess.run([sys.executable, __file__, "--one", recipe, "--argv", json.dumps(argv)], env=env,
                          capture_output=True, text=True, cwd=folder)  # fmt: skip
    marked = [line for line in done.stdout.splitlines() if line.startswith("GPU_CHECK ")]
    if marked:
        return json.loads(marked[-1].removeprefix("GPU_CHECK "))
    return {"recipe": recipe, "broke": f"exit {done.returncode} after {time.time() - started:.0f} s: "
                                       f"{done.stderr.strip()[-400:]}"}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="CPU, a tiny model, a slice of each data set")
    parser.add_argument("--steps", type=int, default=5, help="training steps per recipe (default 5; 2 with --dry)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated, of " + ", ".join(RECIPES))
    parser.add_argument("--shared", default=str(PROJECT.parent / "shared"), help="the ../shared folder (data, tokenizer)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one recipe, print its figures
    parser.add_argument("--argv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("GPU_CHECK " + json.dumps(figures_of(args.one, json.loads(args.argv))), flush=True)
        return 0

    import torch

    shared = Path(args.shared)
    recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; use {', '.join(RECIPES)}")
    if args.dry:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch looks for a device
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ.setdefault(name, "1")
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --dry for the CPU check", file=sys.stderr)
        return 2
    steps = 2 if args.dry and args.steps == 5 else args.steps
    device = "cpu (dry run)" if args.dry else torch.cuda.get_device_name()
    print(f"gpu_check on {device}, torch {torch.__version__}, {steps} steps per recipe, default precision, gradient "
          f"checkpointing; load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        models = {}
        for recipe in recipes:
            arch, shape = SHAPES[recipe]
            shape = "tiny" if args.dry else shape
            if (arch, shape) not in models:
                path = folder / f"model-{arch}-{shape}"
                made = make_model(arch, shape, shared / "models" / "gpt2-tokenizer", path, env, args.dry)
                if made is not None:
                    rows.append({"recipe": recipe, "broke": f"making the {arch} {shape} model: {made}"})
                    continue
                models[(arch, shape)] = str(path)
            argv = recipe_argv(recipe, models[(arch, shape)], shared, folder, steps, args.dry)
            started = time.time()
            if args.dry:  # in this process: a tiny model trains in seconds, a process start would double that
                rows.append(figures_of(recipe, argv))
            else:
                rows.append(in_own_process(recipe, argv, env, folder))
            print(f"  {recipe}: {'broke' if 'broke' in rows[-1] else 'ran'} ({time.time() - started:.0f} s)", flush=True)
    print(f"\n{'recipe':12} {'steps':>5} {'step s':>8} {'tokens/s':>10} {'MFU':>8} {'precision':>9} {'peak GiB':>9}  memory")
    for row in rows:
        if "broke" in row:
            print(f"{row['recipe']:12} BROKE: {row['broke']}")
            if row.get("where"):
                print("    " + row["where"].strip().replace("\n", "\n    "))
            continue
        mfu = f"{row['mfu']:.3%}" if row["mfu"] is not None else "-"  # a tiny model's dry run: well under 0.1%
        print(f"{row['recipe']:12} {row['steps']:>5} {row['step_seconds']:>8.3f} {row['tokens_per_second']:>10.0f} "
              f"{mfu:>8} {row['peak_dtype']:>9} {row['peak_memory_gib']:>9.2f}  {row['memory_kind']}")
    broken = [row["recipe"] for row in rows if "broke" in row]
    print(f"\n{len(rows) - len(broken)} of {len(rows)} recipes ran" + (f"; broke: {', '.join(broken)}" if broken else ""))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
