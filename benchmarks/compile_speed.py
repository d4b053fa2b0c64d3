"""Does torch.compile pay for itself? Eager against compiled training steps, compile time included.

    python benchmarks/compile_speed.py [--steps 20] [--workloads spam,instruction] [--precision auto]

Two workloads of the recipes, gpt2 shape (random weights, the real tokenizer and data), batches of
8 grouped by length as the recipes group them (so the lengths vary from step to step, as in a
run: the compiled model is built with dynamic shapes):
- spam: the cached head-method step: the last block, final norm and class head on the frozen
  prefix's hidden states (what a `--cache_frozen` step runs);
- instruction: a full fine-tuning step, LM head at the target positions only.
Each side: forward, backward, AdamW, in the precision a run chooses for this machine. The compiled
side's first step includes compiling (TorchInductor); a later recompilation shows as a slow step.
Printed: compile time, median eager and compiled step, the steps a run needs before compiling has
paid for itself, and the recipe's own step count (spam: 5 epochs, 655 steps; instruction: 117 an
epoch) for comparison. Wall and CPU time, load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
sys.path.insert(0, str(PROJECT))
RECIPE_STEPS = {"spam": 655, "instruction": 117}


def length_grouped(lengths: list[int], batch: int, steps: int, seed: int = 0) -> list[list[int]]:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    order = list(LengthGroupedSampler(batch, lengths=lengths, generator=torch.Generator().manual_seed(seed)))
    return [order[i : i + batch] for i in range(0, min(len(order), steps * batch), batch)]


def spam_workload(model_dir: Path, tokenizer, steps: int):
    """(module to train, its parameters, a function(batch_index) -> loss)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from hf_finetune.core.model.kernels import fuse_activations

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    fuse_activations(model)
    text = zipfile.ZipFile(SHARED / "data" / "sms_spam_collection" / "smsspamcollection.zip").read("SMSSpamCollection")
    texts = [line.split("\t", 1)[1] for line in text.decode("utf-8").splitlines()[:1045]]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    batches = length_grouped(lengths, 8, steps + 2)
    block, norm, head = model.transformer.h[-1], model.transformer.ln_f, model.score

    class LastBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block, self.norm, self.head = block, norm, head

        def forward(self, hidden):
            output = self.block(hidden)
            output = output[0] if isinstance(output, tuple) else output
            return self.head(self.norm(output))[:, -1]

    module = LastBlock().train()
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(len(b), max(lengths[i] for i in b), 768, generator=generator) for b in batches]
    labels = [torch.randint(0, 2, (len(b),), generator=generator) for b in batches]

    def loss(model_to_run, index):
        return torch.nn.functional.cross_entropy(model_to_run(inputs[index]).float(), labels[index])

    return module, loss, len(batches)


def instruction_workload(model_dir: Path, tokenizer, steps: int):
    import torch
    from transformers import AutoModelForCausalLM

    from hf_finetune.core.data.sources import load_source
    from hf_finetune.core.model.kernels import fuse_activations
    from hf_finetune.core.model.trainers import target_loss
    from hf_finetune.methods.instruction.encoding import encode_instructions
    from hf_finetune.methods.text.instructions import prepare_instructions

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.config.use_cache = False
    fuse_activations(model)
    data = prepare_instructions(load_source(str(SHARED / "data" / "llms_from_scratch_instruction" /
                                                 "instruction-data.json")), "0.85,0.05,0.10")  # fmt: skip
    encoded, _ = encode_instructions(data.splits, tokenizer, 1024, mask_prompt=False)
    ids = encoded["train"]["input_ids"]
    batches = length_grouped([len(x) for x in ids], 8, steps + 2)
    tensors = []
    for batch in batches:
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(input_ids)
        for row, i in enumerate(batch):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        tensors.append((input_ids, mask, input_ids.masked_fill(mask == 0, -100)))

    def loss(model_to_run, index):
        total, count = target_loss(model_to_run, *tensors[index])
        return total / count

    return model.train(), loss, len(batches)


def timed_steps(module, loss, batches: int, steps: int, autocast, compiled: bool) -> dict:
    import torch

    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=5e-5, fused=True)
    run = torch.compile(module, dynamic=True) if compiled else module
    walls, cpus = [], []
    for index in range(min(steps + 1, batches)):
        started, cpu_started = time.perf_counter(), time.process_time()
        with autocast():
            value = loss(run, index)
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    return {"first_step_s": walls[0], "first_step_cpu_s": cpus[0], "median_step_s": statistics.median(walls[1:]),
            "median_step_cpu_s": statistics.median(cpus[1:]), "slowest_later_step_s": max(walls[1:])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps after the first (default 20)")
    parser.add_argument("--workloads", default="spam,instruction")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--shape", default="gpt2")
    args = parser.parse_args()
    import torch

    from hf_finetune import tiny
    from hf_finetune.core.model.loading import load_tokenizer
    from hf_finetune.core.model.precision import hardware_precision

    precision = hardware_precision(torch.device("cpu")).precision if args.precision == "auto" else args.precision
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def autocast():
        return torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)

    folder = Path(tempfile.mkdtemp())
    tiny.main(["--shape", args.shape, "--tokenizer", str(SHARED / "models" / "gpt2-tokenizer"), "--output",
               str(folder / "model"), "--seed", "0"])  # fmt: skip
    tokenizer = load_tokenizer(str(folder / "model"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision if precision != 'no' else 'fp32'}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    report = {}
    for name in args.workloads.split(","):
        make = {"spam": spam_workload, "instruction": instruction_workload}[name]
        sides = {}
        for compiled in (False, True):
            torch.manual_seed(0)
            module, loss, batches = make(folder / "model", tokenizer, args.steps)
            torch._dynamo.reset()
            sides["compiled" if compiled else "eager"] = timed_steps(module, loss, batches, args.steps, autocast, compiled)
            print(name, "compiled" if compiled else "eager", json.dumps(sides["compiled" if compiled else "eager"]), flush=True)
        eager, compiled = sides["eager"], sides["compiled"]
        saved = eager["median_step_s"] - compiled["median_step_s"]
        compile_s = compiled["first_step_s"] - eager["median_step_s"]
        report[name] = {
            "compile_s": round(compile_s, 1),
            "eager_step_s": round(eager["median_step_s"], 4),
            "compiled_step_s": round(compiled["median_step_s"], 4),
            "compiled / eager step": round(compiled["median_step_s"] / eager["median_step_s"], 3),
            "steps to pay for the compile": round(compile_s / saved) if saved > 0 else "never (no faster per step)",
            "recipe steps": RECIPE_STEPS.get(name),
        }
    report["load_at_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
