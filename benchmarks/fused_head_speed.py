"""LM head only where labels are: our `target_loss` against TRL's fused LM head, per training step.

    python benchmarks/fused_head_speed.py [--batches 6] [--rounds 3] [--threads 1] [--memory]

What is compared, on the very same batches and starting weights:

- full:        `model(input_ids, attention_mask, labels=labels).loss`, logits over the whole
               vocabulary at every position (Trainer's default loss);
- target:      `hf_finetune.core.model.trainers.target_loss` (what `TargetLossTrainer` trains with): the
               model gets a boolean `logits_to_keep` mask of the positions that predict a target,
               loss = summed cross-entropy / number of targets;
- trl:         `SFTTrainer.compute_loss` of a real TRL SFTTrainer built on the same model
               (loss_type="nll"), i.e. the model forward patched by
               `trl.trainer.utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))`
               and called with `fused_lm_head=True`. Off CUDA/XPU TRL scores *every* position
               (`compact = _use_triton(device)` is False), in tiles, and recomputes the tiles in
               the backward;
- trl_compact: the same TRL code with its CUDA decision forced (`trl.trainer.utils._use_triton`
               -> True): only positions whose label is not -100 go through the tiled head, the
               tiles being folded by TRL's torch fallback instead of its Triton kernel. This is
               TRL's GPU algorithm, measured on CPU.

Model: GPT-2 of the real gpt2 shape (12 layers, 768 wide, 12 heads, vocabulary 50257) with random
weights (fixed seed), fp32, dropout on as in training (the same RNG seed before each variant's
step, so every variant gets the same dropout masks). Data: the instruction recipe's train split
(first 935 entries of instruction-data.json, in file order), encoded by
`methods.instruction.encoding.encode_example` (max_length 1024), with and without `mask_prompt`. Batches of
8: the examples sorted by length and cut into groups of 8 (what length grouping yields inside a
mega-batch), `--batches` groups taken at evenly spaced length quantiles, padded right by
`core.collate.padding_collator` (labels -100 at padding). The same input ids serve both mask settings; only
the labels differ.

One step = forward + loss + backward + AdamW (lr 5e-5, weight decay 0.1) step + zero_grad. Before
every timed step the parameters and the AdamW state are restored in place to one snapshot (taken
after a warm-up step of every variant), so all variants start each step from the same weights.
Variants are interleaved within each (round, batch), in an order rotated every time, so machine
load hits all alike. Reported: the median over rounds of wall-clock seconds per step and of the
process's CPU seconds per step, per batch; per setting, the mean over batches of those medians
(an epoch's average step) and the ratios.

`--memory` also runs each variant alone in a fresh process: after a warm-up step, the peak resident
memory is reset (Linux `/proc/self/clear_refs`) and one step on the longest selected batch is
measured (`--memory_only` skips the timing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.trainers import target_loss
from hf_finetune.methods.instruction.encoding import encode_example

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_FINETUNE_SHARED", PROJECT.parent / "shared"))
DATA_FILE = SHARED / "data" / "llms_from_scratch_instruction" / "instruction-data.json"
TOKENIZER_DIR = SHARED / "models" / "gpt2-tokenizer"
TRAIN_ENTRIES = 935  # the recipe's split 0.85,0.05,0.10 in file order: train is the first 935 of 1100
MAX_LENGTH = 1024
BATCH = 8
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.1
MODEL_SEED = 123
VARIANTS = ("full", "target", "trl", "trl_compact")
SFT_OUTPUTS = ("log_probs", "entropy", "is_top1")  # what SFTTrainer asks add_fused_lm_head for


# --------------------------------------------------------------------------------------- data


def encode_train(tokenizer, mask_prompt: bool) -> list[dict]:
    entries = json.loads(DATA_FILE.read_text(encoding="utf-8"))[:TRAIN_ENTRIES]
    rows = []
    for entry in entries:
        encoded = encode_example(tokenizer, entry, MAX_LENGTH, mask_prompt)
        if encoded is not None:
            rows.append({"input_ids": encoded[0], "labels": encoded[1]})
    return rows


def pick_groups(rows: list[dict], count: int) -> list[list[int]]:
    """Indices of `count` length-grouped batches of 8 at evenly spaced length quantiles."""
    order = sorted(range(len(rows)), key=lambda index: (len(rows[index]["input_ids"]), index))
    groups = [order[start : start + BATCH] for start in range(0, len(order) - BATCH + 1, BATCH)]
    return [groups[int((k + 0.5) * len(groups) / count)] for k in range(count)]


def make_batches(tokenizer, count: int) -> tuple[dict[bool, list[dict]], list[list[int]], dict[bool, list[dict]]]:
    collate = padding_collator(tokenizer)
    encoded = {mask: encode_train(tokenizer, mask) for mask in (False, True)}
    assert all(a["input_ids"] == b["input_ids"] for a, b in zip(encoded[False], encoded[True]))
    groups = pick_groups(encoded[False], count)
    batches = {mask: [collate([encoded[mask][i] for i in group]) for group in groups] for mask in encoded}
    return batches, groups, encoded


# -------------------------------------------------------------------------------------- model


def build_model():
    torch.manual_seed(MODEL_SEED)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024, use_cache=False)
    return GPT2LMHeadModel(config).train()


def build_sft_trainer(model, tokenizer, train_rows: list[dict], output_dir: str):
    """A real TRL SFTTrainer on `model` (it patches the model's forward with the fused LM head)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=output_dir, report_to="none", use_cpu=True, bf16=False, loss_type="nll", max_length=MAX_LENGTH,
        per_device_train_batch_size=BATCH, learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY,
        disable_tqdm=True, dataloader_pin_memory=False,
    )
    dataset = datasets.Dataset.from_list(train_rows)  # pre-tokenized: input_ids + labels (-100 where masked)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


@contextlib.contextmanager
def trl_compact():
    """Make TRL's fused head take its CUDA/XPU path (only non -100 positions go through the head)."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True  # the tile folding keeps its own (torch) decision
    try:
        yield
    finally:
        trl_utils._use_triton = original


def loss_functions(model, trainer) -> dict:
    def full(batch):
        return model(**batch, use_cache=False).loss

    def target(batch):
        loss_sum, count = target_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        return loss_sum / max(count, 1)

    def trl(batch):
        return trainer.compute_loss(model, dict(batch))  # compute_loss adds keys to its inputs

    def compact(batch):
        with trl_compact():
            return trainer.compute_loss(model, dict(batch))

    return {"full": full, "target": target, "trl": trl, "trl_compact": compact}


class Snapshot:
    """Parameters and AdamW state, restored in place before every timed step."""

    def __init__(self, model, optimizer):
        self.params = [p for p in model.parameters()]
        self.saved = [p.detach().clone() for p in self.params]
        self.optimizer = optimizer
        self.state = {
            id(p): {k: v.detach().clone() for k, v in optimizer.state[p].items()} for p in self.params
        }

    def restore(self):
        with torch.no_grad():
            for p, saved in zip(self.params, self.saved):
                p.copy_(saved)
                for key, value in self.state[id(p)].items():
                    self.optimizer.state[p][key].copy_(value)


def grad_norms(model) -> tuple[float, float]:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
    head = torch.linalg.vector_norm(model.get_output_embeddings().weight.grad).item()  # tied with wte
    return total, head


def timed_step(model, optimizer, loss_fn, batch, seed: int, with_grads: bool):
    torch.manual_seed(seed)  # the same dropout masks for every variant
    wall, cpu = time.perf_counter(), time.process_time()
    loss = loss_fn(batch)
    loss.backward()
    wall_fb, cpu_fb = time.perf_counter() - wall, time.process_time() - cpu
    norms = grad_norms(model) if with_grads else None  # not timed
    wall, cpu = time.perf_counter(), time.process_time()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item(), norms, wall_fb + time.perf_counter() - wall, cpu_fb + time.process_time() - cpu


def setup(variants):
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    trainer = None
    if any(v.startswith("trl") for v in variants):
        rows = encode_train(tokenizer, True)
        trainer = build_sft_trainer(model, tokenizer, rows, tempfile.mkdtemp(prefix="fused_bench."))
    return tokenizer, model, optimizer, trainer


# ----------------------------------------------------------------------------------- checks


def trl_facts(trainer, tokenizer, encoded, groups) -> dict:
    """What the built SFTTrainer did with our model and data."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = trainer.data_collator
    ours = padding_collator(tokenizer)
    facts = {
        "collator": type(collator).__name__,
        "collator_is_trl_lm_collator": isinstance(collator, DataCollatorForLanguageModeling),
        "prepared_train_rows": len(trainer.train_dataset),
        "prepared_columns": trainer.train_dataset.column_names,
        "model_forward_patched_on_instance": "forward" in vars(trainer.model),
        "model_accepts_loss_kwargs": trainer.model_accepts_loss_kwargs,
        "trainer_counts_shifted_labels": trainer._loss_shifts_labels,
    }
    for mask in (False, True):
        rows = [encoded[mask][i] for i in groups[0]]
        theirs, mine = collator([dict(r) for r in rows]), ours(rows)
        facts[f"mask_prompt={mask}, batch 0: same batch from TRL collator as ours"] = all(
            torch.equal(theirs[k], mine[k]) for k in mine
        )
        facts[f"mask_prompt={mask}, batch 0: num_items_in_batch Trainer would pass"] = int(
            trainer._get_num_items_in_batch([mine], torch.device("cpu"))
        )
        facts[f"mask_prompt={mask}, batch 0: targets after the causal shift"] = int((mine["labels"][:, 1:] != -100).sum())
    return facts


# ------------------------------------------------------------------------------------- main


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_memory(variant: str, threads: int, batch_index: int, mask_prompt: bool, count: int) -> dict:
    """Run in a fresh process: setup, a warm-up step (allocates the AdamW state), then reset the peak
    resident memory (Linux: `5` into /proc/self/clear_refs) and measure one step on the given batch."""
    torch.set_num_threads(threads)
    tokenizer, model, optimizer, trainer = setup([variant])
    batches, _, _ = make_batches(tokenizer, count)
    fn = loss_functions(model, trainer)[variant]
    timed_step(model, optimizer, fn, batches[mask_prompt][0], 0, False)
    Path("/proc/self/clear_refs").write_text("5")
    rss = proc_status_kib("VmRSS")
    timed_step(model, optimizer, fn, batches[mask_prompt][batch_index], 0, False)
    peak = proc_status_kib("VmHWM")
    return {"variant": variant, "rss_before_step_MiB": rss / 1024, "peak_during_step_MiB": peak / 1024}


def report_memory(args, variants) -> None:
    print(f"\nPeak RSS of one step on batch {args.batches - 1} (the longest selected), each variant alone in a "
          f"fresh process, after a warm-up step (peak reset through /proc/self/clear_refs):")
    for mask in (False, True):
        for name in variants:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", f"{name}:{int(mask)}", "--threads", str(args.threads),
                 "--batches", str(args.batches)],
                capture_output=True, text=True, check=True, env=os.environ,
            ).stdout.strip().splitlines()[-1]
            result = json.loads(out)
            print(f"  mask_prompt={mask!s:5} {name:11}: RSS before the step {result['rss_before_step_MiB']:.0f} MiB, "
                  f"peak during it {result['peak_during_step_MiB']:.0f} MiB "
                  f"(+{result['peak_during_step_MiB'] - result['rss_before_step_MiB']:.0f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=6, help="length-grouped batches of 8 at length quantiles")
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per variant, batch and mask setting")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--memory", action="store_true", help="peak RSS per variant, each in its own process")
    parser.add_argument("--memory_only", action="store_true", help="only the peak-memory part")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.memory_child:
        variant, mask = args.memory_child.split(":")
        print(json.dumps(measure_memory(variant, args.threads, args.batches - 1, mask == "1", args.batches)))
        return

    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    if args.memory_only:
        report_memory(args, variants)
        return
    started = time.perf_counter()
    tokenizer, model, optimizer, trainer = setup(variants)
    batches, groups, encoded = make_batches(tokenizer, args.batches)
    functions = loss_functions(model, trainer)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, attention {model.config._attn_implementation}, "
          f"{args.batches} batches x {args.rounds} rounds x {len(variants)} variants x 2 mask settings", flush=True)
    for k, batch in enumerate(batches[False]):
        shape = tuple(batch["input_ids"].shape)
        real = int(batch["attention_mask"].sum())
        targets = {m: int((batches[m][k]["labels"][:, 1:] != -100).sum()) for m in (False, True)}
        print(f"batch {k}: {shape[0]}x{shape[1]}, {real} real tokens, head positions: full {shape[0] * shape[1]}, "
              f"targets {targets[False]} (mask_prompt False) / {targets[True]} (True)", flush=True)
    if trainer is not None:
        print("SFTTrainer facts:", json.dumps(trl_facts(trainer, tokenizer, encoded, groups), indent=1), flush=True)

    # Warm-up: one step of every variant (allocates the AdamW state), then the snapshot all steps start from.
    for name in variants:
        timed_step(model, optimizer, functions[name], batches[True][0], 0, False)
    snapshot = Snapshot(model, optimizer)

    times = {(m, k, v): [] for m in (False, True) for k in range(args.batches) for v in variants}
    first = {}  # (mask, batch, variant) -> (loss, grad norm, head grad norm), round 0
    turn = 0
    for round_index in range(args.rounds):
        for mask in (False, True):
            for k in range(args.batches):
                order = variants[turn % len(variants) :] + variants[: turn % len(variants)]
                turn += 1
                for name in order:
                    snapshot.restore()
                    loss, norms, wall, cpu = timed_step(
                        model, optimizer, functions[name], batches[mask][k], 1000 * k + round_index, round_index == 0
                    )
                    times[(mask, k, name)].append((wall, cpu))
                    if round_index == 0:
                        first[(mask, k, name)] = (loss, *norms)
        print(f"round {round_index + 1}/{args.rounds} done, {time.perf_counter() - started:.0f} s", flush=True)

    # ---- agreement
    print("\nLoss / gradient agreement (round 0, same weights and dropout masks), against 'full':")
    for mask in (False, True):
        for name in variants:
            if name == "full":
                continue
            diffs = [
                [abs(first[(mask, k, name)][i] - first[(mask, k, "full")][i]) for k in range(args.batches)]
                for i in range(3)
            ]
            rel = [
                max(abs(first[(mask, k, name)][i] / first[(mask, k, "full")][i] - 1) for k in range(args.batches))
                for i in range(3)
            ]
            print(f"  mask_prompt={mask!s:5} {name:11}: max |dloss| {max(diffs[0]):.2e}, "
                  f"max |d grad norm| {max(diffs[1]):.2e} (rel {rel[1]:.1e}), "
                  f"max |d head grad norm| {max(diffs[2]):.2e} (rel {rel[2]:.1e})")
    for mask in (False, True):
        print(f"  mask_prompt={mask}: losses of 'full' per batch: "
              + ", ".join(f"{first[(mask, k, 'full')][0]:.5f}" for k in range(args.batches)))

    # ---- timings
    def med(mask, k, name, which):
        return statistics.median(t[which] for t in times[(mask, k, name)])

    summary = {}
    for which, label in ((0, "wall"), (1, "CPU")):
        print(f"\nMedian {label} seconds per step (over {args.rounds} rounds):")
        print("  mask_prompt batch(len) " + "".join(f"{v:>12}" for v in variants))
        for mask in (False, True):
            for k in range(args.batches):
                length = batches[mask][k]["input_ids"].shape[1]
                print(f"  {mask!s:11} {k}({length:3})    " + "".join(f"{med(mask, k, v, which):12.3f}" for v in variants))
            means = {v: statistics.mean(med(mask, k, v, which) for k in range(args.batches)) for v in variants}
            summary[(label, mask)] = means
            print(f"  {mask!s:11} mean       " + "".join(f"{means[v]:12.3f}" for v in variants))
    print("\nRatios of the mean step time (mean over batches of the per-batch medians):")
    for (label, mask), means in summary.items():
        parts = [f"{v}/full {means[v] / means['full']:.3f}" for v in variants if v != "full" and "full" in means]
        if "target" in means:
            parts += [f"{v}/target {means[v] / means['target']:.3f}" for v in variants if v.startswith("trl")]
        print(f"  {label:4} mask_prompt={mask!s:5}: " + ", ".join(parts))
    print(json.dumps({f"{label}_mask_prompt_{mask}": {v: round(x, 4) for v, x in means.items()}
                      for (label, mask), means in summary.items()}))

    if args.memory:
        report_memory(args, variants)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
