"""Instruction tuning speed: our Trainer setup against the book's loop, and batched generation.

    python benchmarks/instruction_speed.py --epoch [--book_steps 20]    # the targets: one epoch, MFU
    python benchmarks/instruction_speed.py [--steps 20] [--shape gpt2] [--generate 16]

--epoch: one epoch of `recipes/instruction.py` with its defaults (gpt2 shape here, the precision
chosen for this machine, batches grouped by length, evaluation every 20 steps with a generated
validation response, the epoch's checkpoint), run as a user runs it in a process of its own,
against the book's loop in fp32 both ways: its training steps alone (random batches, full
logits) and with its evaluation every 5 steps, each over --book_steps steps (tokens per second
of real text; an epoch is the same tokens at that rate). Ours counts the epoch's training time
(`train_runtime_seconds`, evaluations and the checkpoint included; not the final test answers,
cut to one token here). Also the training steps' model FLOPs utilization (the MFU target: 35% of
the peak at the run's precision, gpt2 shape, batch 8).

Both trainings use GPT-2 with random weights (the real gpt2 shape unless --shape says
otherwise), the real tokenizer and the real instruction-data.json train split, batch 8, AdamW
5e-5, fp32, the same number of optimizer steps, and count tokens of real (non-pad) text.

- the book's loop (chapter 7): random batches padded to their longest entry, logits over
  the full vocabulary at every position, an evaluation every 5 steps over 5 training and
  5 validation batches;
- ours (recipes/instruction.py): batches grouped by length, LM head applied only where a label
  is, evaluation every 20 steps over the validation split and 40 training examples, with the
  response to the fixed validation example generated at each evaluation.

Generation: greedy answers to test prompts, batched (8, left padding, KV cache) against one at
a time (KV cache too); a random model never stops early, so both generate every token allowed.
Ratios are measured in one run, in wall-clock time and in the process's CPU time (with
OMP_NUM_THREADS=1 the CPU time hardly depends on what else the machine is doing); read the
ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import TrainingArguments

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_FINETUNE_SHARED", PROJECT.parent / "shared"))
sys.path.insert(0, str(PROJECT))

from hf_finetune import tiny  # noqa: E402
from hf_finetune.core.data.collate import padding_collator  # noqa: E402
from hf_finetune.core.data.sources import load_source  # noqa: E402
from hf_finetune.core.model.loading import load_tokenizer  # noqa: E402
from hf_finetune.core.model.trainers import TargetLossTrainer  # noqa: E402
from hf_finetune.methods.instruction.encoding import encode_instructions  # noqa: E402
from hf_finetune.methods.instruction.generate import LogValidationResponse
from hf_finetune.methods.text.instructions import prepare_instructions  # noqa: E402
from hf_finetune.methods.text.prompt import format_example  # noqa: E402
from hf_finetune.methods.text.responses import generate_responses  # noqa: E402

BATCH = 8
LEARNING_RATE = 5e-5


def fresh_model(folder: Path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(123)
    return AutoModelForCausalLM.from_pretrained(folder)


def book_collate(batch_ids: list[list[int]], pad_id: int):
    """The book's collate: append end-of-text, pad to the longest, targets shifted by one with
    every pad but the first set to -100."""
    longest = max(len(ids) + 1 for ids in batch_ids)
    inputs, targets = [], []
    for ids in batch_ids:
        padded = ids + [pad_id] * (longest - len(ids))
        target = torch.tensor(padded[1:])
        target[len(ids) :] = -100  # position len(ids)-1 holds the first end-of-text target
        inputs.append(torch.tensor(padded[:-1]))
        targets.append(target)
    return torch.stack(inputs), torch.stack(targets)


def book_loss(model, inputs, targets):
    logits = model(input_ids=inputs).logits  # every position, full vocabulary
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def run_book_loop(model_dir: Path, train_ids, validation_ids, pad_id: int, steps: int,
                  evaluate: bool = True) -> tuple[int, float, float]:  # fmt: skip
    model = fresh_model(model_dir).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.1)
    generator = torch.Generator().manual_seed(123)
    collate = lambda batch: book_collate(batch, pad_id)  # noqa: E731
    train_loader = DataLoader(train_ids, batch_size=BATCH, shuffle=True, drop_last=True, collate_fn=collate,
                              generator=generator)
    validation_loader = DataLoader(validation_ids, batch_size=BATCH, collate_fn=collate)
    real_tokens = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for step, (inputs, targets) in enumerate(train_loader):
        if step == steps:
            break
        optimizer.zero_grad()
        book_loss(model, inputs, targets).backward()
        optimizer.step()
        real_tokens += int((targets != -100).sum()) + len(inputs)  # each text and its end-of-text, as ours counts
        if evaluate and step % 5 == 0:  # the book's eval_freq=5, eval_iter=5
            model.eval()
            with torch.no_grad():
                for loader in (train_loader, validation_loader):
                    for index, (eval_inputs, eval_targets) in enumerate(loader):
                        if index == 5:
                            break
                        book_loss(model, eval_inputs, eval_targets)
            model.train()
    return real_tokens, time.perf_counter() - started, time.process_time() - cpu_started


def run_ours(model_dir: Path, tokenizer, encoded, validation_entry, steps: int, output: Path, bf16: bool):
    model = fresh_model(model_dir)
    model.config.use_cache = False
    counted = {"tokens": 0}

    pad = padding_collator(tokenizer)

    def counting(features):
        batch = pad(features)
        if model.training:
            counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    args = TrainingArguments(
        output_dir=str(output), max_steps=steps, per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
        learning_rate=LEARNING_RATE, weight_decay=0.1, lr_scheduler_type="constant", seed=123,
        train_sampling_strategy="group_by_length", eval_strategy="steps", eval_steps=20, logging_steps=5,
        save_strategy="no", report_to="none", disable_tqdm=True, prediction_loss_only=True,
        dataloader_pin_memory=False, bf16=bf16, use_cpu=not torch.cuda.is_available(),
    )
    trainer = TargetLossTrainer(
        model=model, args=args, train_dataset=encoded["train"],
        eval_dataset={"validation": encoded["validation"], "train": encoded["train"].select(range(40))},
        processing_class=tokenizer, data_collator=counting,
        callbacks=[LogValidationResponse(validation_entry, tokenizer, 64)],
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    return counted["tokens"], time.perf_counter() - started, time.process_time() - cpu_started


def epoch_targets(model_dir: Path, data_file: Path, book_ids: dict, pad_id: int, book_steps: int) -> None:
    """One epoch of the recipe (its own process) against the book's loop both ways; the MFU."""
    import resource
    import subprocess

    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    output = model_dir.parent / "recipe-epoch"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(PROJECT / "recipes" / "instruction.py"), "--model_name_or_path",
                           str(model_dir), "--dataset", str(data_file), "--num_train_epochs", "1",
                           "--max_new_tokens", "1", "--output_dir", str(output), "--disable_tqdm", "true"],
                          env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    results = json.loads((output / "all_results.json").read_text())
    precision = next(line for line in done.stdout.splitlines() if line.strip().startswith("precision"))
    tokens = results["train_tokens_per_epoch"]
    ours = {"tokens": tokens, "epoch_wall_s": results["train_runtime_seconds"], "epoch_cpu_s": results["train_cpu_seconds"],
            "whole_command_wall_s": round(wall, 1),
            "whole_command_cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "model_flops_utilization": results["model_flops_utilization"], "peak": results["peak_flops_per_second"],
            "peak_dtype": results["peak_dtype"], "training_steps": results["training_steps_timed"],
            "training_step_seconds": results["training_step_seconds"], "precision": " ".join(precision.split()[1:])}  # fmt: skip
    print("ours, one epoch:", json.dumps(ours), flush=True)
    book = {}
    for name, evaluate in (("book, training steps alone (fp32)", False), ("book, with its evaluation every 5 steps (fp32)", True)):
        real, seconds, cpu_seconds = run_book_loop(model_dir, book_ids["train"], book_ids["validation"], pad_id,
                                                   book_steps, evaluate)  # fmt: skip
        book[name] = {"tokens": real, "wall_s": round(seconds, 1), "cpu_s": round(cpu_seconds, 1),
                      "tokens_per_s": real / seconds, "tokens_per_cpu_s": real / cpu_seconds}  # fmt: skip
        print(name, json.dumps(book[name]), flush=True)
    ours_rate = tokens / ours["epoch_wall_s"], tokens / ours["epoch_cpu_s"]
    print(f"\none epoch, {tokens} real tokens: ours {ours['epoch_wall_s']:.1f} s wall, {ours['epoch_cpu_s']:.1f} s CPU "
          f"({ours['precision'].split(',')[0]}); load average after: {os.getloadavg()[0]:.2f}")
    for name, figures in book.items():
        print(f"  ours / {name}: {ours_rate[0] / figures['tokens_per_s']:.2f}x wall, "
              f"{ours_rate[1] / figures['tokens_per_cpu_s']:.2f}x CPU (the book's epoch: "
              f"{tokens / figures['tokens_per_s']:.0f} s at its rate over {book_steps} steps)")
    print(f"training-step MFU: {ours['model_flops_utilization']:.1%} of the {ours['peak_dtype']} peak "
          f"({ours['peak'] / 1e9:.1f} GFLOP/s) over {ours['training_steps']} steps (target: >= 35%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per training run")
    parser.add_argument("--shape", default="gpt2", choices=sorted(tiny.SHAPES))
    parser.add_argument("--generate", type=int, default=16, help="test prompts to answer")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--bf16", action="store_true", help="also time ours with bf16 autocast")
    parser.add_argument("--only", choices=("training", "generation", "ours", "ours_bf16"),
                        help="run one of the two comparisons, or only our training (fp32, or bf16 autocast)")
    parser.add_argument("--batch_sizes", default="8", help="generation batch sizes compared with one at a time")
    parser.add_argument("--epoch", action="store_true", help="the targets: one recipe epoch against the book, MFU")
    parser.add_argument("--book_steps", type=int, default=20, help="--epoch: the book loop's measured steps")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(123)

    data_file = SHARED / "data" / "llms_from_scratch_instruction" / "instruction-data.json"
    tokenizer_dir = SHARED / "models" / "gpt2-tokenizer"
    work = Path(tempfile.mkdtemp(prefix="instruction_speed."))
    model_dir = work / "model"
    tiny.main(["--tokenizer", str(tokenizer_dir), "--shape", args.shape, "--output", str(model_dir)])
    tokenizer = load_tokenizer(str(model_dir))
    data = prepare_instructions(load_source(str(data_file)), "0.85,0.05,0.10")
    encoded, _ = encode_instructions(data.splits, tokenizer, 1024, mask_prompt=False)
    book_ids = {
        split: [tokenizer(format_example(row))["input_ids"] for row in data.splits[split]]
        for split in ("train", "validation")
    }
    print(f"torch threads {torch.get_num_threads()}, shape {args.shape}, {args.steps} steps of batch {BATCH}", flush=True)
    if args.epoch:
        epoch_targets(model_dir, data_file, book_ids, tokenizer.eos_token_id, args.book_steps)
        return

    runs = {"book loop": lambda: run_book_loop(model_dir, book_ids["train"], book_ids["validation"],
                                               tokenizer.eos_token_id, args.steps)}
    validation_entry = dict(data.splits["validation"][0])
    runs["ours"] = lambda: run_ours(model_dir, tokenizer, encoded, validation_entry, args.steps, work / "ours", False)
    if args.bf16:
        runs["ours bf16"] = lambda: run_ours(model_dir, tokenizer, encoded, validation_entry, args.steps,
                                             work / "bf16", True)
    if args.only == "generation":
        runs = {}
    if args.only == "ours":
        runs = {"ours": runs["ours"]}
    if args.only == "ours_bf16":
        runs = {"ours bf16": lambda: run_ours(model_dir, tokenizer, encoded, validation_entry, args.steps,
                                              work / "bf16", True)}
    rates = {}
    for name, run in runs.items():
        tokens, seconds, cpu_seconds = run()
        rates[name] = (tokens / seconds, tokens / cpu_seconds)
        print(f"{name}: {tokens} real tokens in {seconds:.1f} s wall ({tokens / seconds:.1f} tokens/s), "
              f"{cpu_seconds:.1f} s CPU ({tokens / cpu_seconds:.1f} tokens per CPU second)", flush=True)
    results = {}
    for name in runs:
        if name != "book loop" and "book loop" in rates:
            key = name.replace(" ", "_")
            results[f"{key}_over_book_wall"] = rates[name][0] / rates["book loop"][0]
            results[f"{key}_over_book_cpu"] = rates[name][1] / rates["book loop"][1]

    if args.only in ("training", "ours", "ours_bf16"):
        print(json.dumps({key: round(value, 3) for key, value in results.items()}))
        return
    model = fresh_model(model_dir).eval()
    prompts = [dict(row) for row in data.splits["test"].select(range(args.generate))]
    timings = {}
    for batch_size in [1, *(int(size) for size in args.batch_sizes.split(","))]:
        started, cpu_started = time.perf_counter(), time.process_time()
        generate_responses(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=batch_size)
        timings[batch_size] = (time.perf_counter() - started, time.process_time() - cpu_started)
        print(f"generation, batch {batch_size}: {args.generate} prompts x {args.max_new_tokens} new tokens "
              f"in {timings[batch_size][0]:.1f} s wall, {timings[batch_size][1]:.1f} s CPU", flush=True)
    for batch_size, (seconds, cpu_seconds) in timings.items():
        if batch_size != 1:
            results[f"generation_batch{batch_size}_over_one_wall"] = timings[1][0] / seconds
            results[f"generation_batch{batch_size}_over_one_cpu"] = timings[1][1] / cpu_seconds
    print()
    for key, value in results.items():
        if key.endswith("_over_book_wall"):
            name = key[: -len("_over_book_wall")]
            print(f"training throughput, {name} / book loop (fp32): {value:.2f}x wall clock, "
                  f"{results[name + '_over_book_cpu']:.2f}x per CPU second")
    for batch_size in timings:
        if batch_size != 1:
            print(f"generation, batch {batch_size} / one at a time: "
                  f"{results[f'generation_batch{batch_size}_over_one_wall']:.2f}x faster wall clock, "
                  f"{results[f'generation_batch{batch_size}_over_one_cpu']:.2f}x less CPU time")
    print(json.dumps({key: round(value, 3) for key, value in results.items()}))


if __name__ == "__main__":
    main()
