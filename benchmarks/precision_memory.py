"""Peak memory and step time of one training step: gradient checkpointing on/off, bf16 vs fp32.

GPT-2 shape (124M parameters, random weights) as a sequence classifier (the head method), all
parameters trainable, AdamW, batch 8 x 128 tokens, on CPU. Each setting runs in its own process,
so the peak resident memory of one does not hide another's:

    python benchmarks/precision_memory.py [--steps 3] [--batch 8] [--tokens 128] [--shape gpt2]

"peak" is the process's peak resident memory over the timed steps (Linux VmHWM, reset after a
warm-up step, which also allocates the optimizer state); "transient" is that peak minus the
memory resident before the steps: what the activations and gradients of a step add.
"CPU" is the process's CPU time per step (all threads): on a machine shared with other jobs it
moves far less than the wall-clock step time.
Prints one line per setting and the ratios against fp32 without checkpointing.
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
from contextlib import nullcontext
from pathlib import Path

SETTINGS = {
    "fp32": dict(bf16=False, checkpointing=False),
    "fp32 + checkpointing": dict(bf16=False, checkpointing=True),
    "bf16": dict(bf16=True, checkpointing=False),
    "bf16 + checkpointing": dict(bf16=True, checkpointing=True),
}
TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "models" / "gpt2-tokenizer"


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def measure(model_dir: str, setting: dict, steps: int, batch: int, tokens: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    model.config.pad_token_id = 0
    model.config.use_cache = False
    if setting["checkpointing"]:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    input_ids = torch.randint(0, model.config.vocab_size, (batch, tokens))
    labels = torch.randint(0, 2, (batch,))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if setting["bf16"] else nullcontext()

    def step() -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        with autocast:
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started, time.process_time() - cpu_started

    step()  # warm-up: allocates the optimizer state and the allocator's caches
    resting = resident_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    wall, cpu = zip(*(step() for _ in range(steps)))
    peak = resident_kib("VmHWM")
    return {
        "step_seconds": statistics.median(wall),
        "step_cpu_seconds": statistics.median(cpu),
        "tokens_per_second": batch * tokens / statistics.median(wall),
        "peak_mib": peak / 1024,
        "transient_mib": (peak - resting) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--shape", default="gpt2", help="a shape of `python -m hf_finetune.tiny`")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one setting
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(measure(args.model_dir, SETTINGS[args.one], args.steps, args.batch, args.tokens)))
        return

    import torch

    from hf_finetune.core.model.precision import cpu_bf16_instructions

    print(f"GPT-2 shape '{args.shape}', random weights, sequence classifier, all parameters trainable, AdamW")
    print(f"batch {args.batch} x {args.tokens} tokens, median of {args.steps} steps after a warm-up step, "
          f"{torch.get_num_threads()} threads, native bf16: {cpu_bf16_instructions() or 'none'}")
    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(Path(folder) / "model")
        subprocess.run(
            [sys.executable, "-m", "hf_finetune.tiny", "--shape", args.shape, "--tokenizer", str(TOKENIZER),
             "--output", model_dir],
            check=True, capture_output=True,
        )  # fmt: skip
        results = {}
        for name in SETTINGS:
            if SETTINGS[name]["bf16"] and cpu_bf16_instructions() is None:
                print(f"{name:22s} skipped: no native bf16 on this CPU")
                continue
            output = subprocess.run(
                [sys.executable, __file__, "--one", name, "--model_dir", model_dir, "--steps", str(args.steps),
                 "--batch", str(args.batch), "--tokens", str(args.tokens)],
                check=True, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )  # fmt: skip
            results[name] = json.loads(output.stdout.strip().splitlines()[-1])
            r = results[name]
            print(f"{name:22s} step {r['step_seconds']:6.2f} s (CPU {r['step_cpu_seconds']:6.2f} s)  "
                  f"{r['tokens_per_second']:6.0f} tokens/s  "
                  f"peak {r['peak_mib']:7.0f} MiB  transient {r['transient_mib']:6.0f} MiB", flush=True)

    base = results["fp32"]
    print("\nratios against fp32 without checkpointing (time: >1 is slower; memory: <1 is smaller)")
    for name, r in results.items():
        if name == "fp32":
            continue
        print(f"{name:22s} step time x{r['step_seconds'] / base['step_seconds']:.2f}  "
              f"step CPU time x{r['step_cpu_seconds'] / base['step_cpu_seconds']:.2f}  "
              f"peak memory x{r['peak_mib'] / base['peak_mib']:.2f}  "
              f"transient memory x{r['transient_mib'] / base['transient_mib']:.2f}")


if __name__ == "__main__":
    main()
