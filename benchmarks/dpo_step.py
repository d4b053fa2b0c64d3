"""What does a DPO step cost against the SFT step of the same model and batch? Ratios measured in one run.

    python benchmarks/dpo_step.py [--batch 8] [--rounds 3] [--shape gpt2] [--threads N] [--precision auto]
                                  [--memory]

GPT-2 shape (124M parameters, random weights, the GPT-2 tokenizer), every parameter trainable,
AdamW, on CPU, in the precision a run chooses for this machine (--precision auto; or bf16, fp32).
The batch is the first --batch pairs of the book's preference data (../shared/data, or --dataset),
prompts in the Alpaca format:
- sft: the instruction method's step (TargetLossTrainer, --mask_prompt) on prompt + chosen answer;
- dpo (default): the preference method's step as it runs by default: TRL's DPOTrainer on prompt +
  chosen and prompt + rejected in one concatenated forward (twice the sequences), the reference's
  log-probabilities computed once before training (--precompute_ref_log_probs, the default), the LM
  head only at the answers' tokens;
- dpo, frozen reference copy: the same with --precompute_ref_log_probs false: the frozen copy
  scores both answers in every step, without gradients;
- dpo, TRL's head: the default step with TRL's own fused head, which on CPU scores every position.

Time: the settings take turns, one optimizer step each per round (forward, backward, AdamW), in a
rotating order, so load from other jobs hits them alike; the median per setting after a warm-up
round, wall clock and this process's CPU time. Memory: each setting again in its own process (the
peak of one must not hide another's): "peak" is the peak resident memory over three steps after a
warm-up step (Linux VmHWM), "resting" what was resident before them (model, reference, optimizer).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import unittest.mock
from pathlib import Path

SETTINGS = ("sft", "dpo (default)", "dpo, frozen reference copy", "dpo, TRL's head")
SHARED = Path(__file__).resolve().parents[2] / "shared"
PRECISION = "fp32"  # set by main: bf16 or fp32
TOKENIZER = SHARED / "models" / "gpt2-tokenizer"
PAIRS = SHARED / "data" / "llms_from_scratch_instruction" / "instruction-data-with-preference.json"


def resident_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def build(setting: str, model, tokenizer, dataset: str, batch: int, folder: str):
    """(trainer, its batch) of one setting, on its own copy of `model`."""
    import datasets
    from transformers import TrainingArguments

    from hf_finetune.core.data.collate import padding_collator
    from hf_finetune.core.model.trainers import TargetLossTrainer
    from hf_finetune.methods.instruction.encoding import encode_example
    from hf_finetune.methods.preference import trainer as preference_trainer
    from hf_finetune.methods.preference.arguments import PreferenceArguments, dpo_config_from
    from hf_finetune.methods.preference.trainer import build_preference_trainer
    from hf_finetune.methods.text.pair_encoding import encode_pair
    from hf_finetune.methods.text.pairs import load_preference_data

    entries = list(load_preference_data(dataset, None, None, drop_identical_pairs=True).splits["train"])[:batch]
    args = TrainingArguments(output_dir=folder, report_to="none", use_cpu=True, per_device_train_batch_size=batch,
                             disable_tqdm=True, bf16=PRECISION == "bf16")  # fmt: skip
    if setting == "sft":
        features = []
        for entry in entries:
            input_ids, labels, _ = encode_example(tokenizer, {**entry, "output": entry["chosen"]}, 1024, mask_prompt=True)
            features.append({"input_ids": input_ids, "labels": labels})
        collator = padding_collator(tokenizer)
        trainer = TargetLossTrainer(model=copy.deepcopy(model), args=args, processing_class=tokenizer,
                                    data_collator=collator)  # fmt: skip
        return trainer, collator(features)
    pairs = datasets.Dataset.from_list([encode_pair(tokenizer, entry, 1024, "1024 tokens")[0] for entry in entries])
    preference = PreferenceArguments(loss_type="sigmoid", precompute_ref_log_probs=setting != "dpo, frozen reference copy")
    with contextlib.ExitStack() as stack:
        if setting == "dpo, TRL's head":
            stack.enter_context(unittest.mock.patch.object(preference_trainer, "score_answers_only", lambda model: None))
        trainer = build_preference_trainer(copy.deepcopy(model), dpo_config_from(args, preference, 1024), pairs, None,
                                           tokenizer, callbacks=[])  # fmt: skip
        dataloader = trainer.get_train_dataloader()  # precomputes the reference's log-probabilities when asked
    return trainer, next(iter(dataloader))


def prepare(trainer) -> None:
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    trainer.current_gradient_accumulation_steps = 1  # set by train() otherwise
    trainer.model.train()


def step(trainer, inputs) -> tuple[float, float]:
    from hf_finetune.core.model.precision import training_autocast

    started, cpu_started = time.perf_counter(), time.process_time()
    with training_autocast(trainer.args):  # what accelerate wraps the model's forward in once train() starts
        trainer.training_step(trainer.model, inputs)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, time.process_time() - cpu_started


def load(model_dir: str, threads: int | None):
    import torch

    from hf_finetune.core.model.loading import load_causal_lm, load_tokenizer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, tokenizer)
    model.config.use_cache = False
    return model, tokenizer


def memory(setting: str, model_dir: str, dataset: str, batch: int, threads: int | None) -> dict:
    """Peak and resting memory of one setting, alone in this process."""
    model, tokenizer = load(model_dir, threads)
    with tempfile.TemporaryDirectory() as folder:
        trainer, inputs = build(setting, model, tokenizer, dataset, batch, folder)
        del model  # only the trainer's copy (and its reference) stays
        prepare(trainer)
        step(trainer, inputs)  # warm-up: allocates the optimizer state and the allocator's caches
        resting = resident_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        for _ in range(3):
            step(trainer, inputs)
        return {"peak_mib": resident_kib("VmHWM") / 1024, "resting_mib": resting / 1024}


def timing(model_dir: str, dataset: str, batch: int, rounds: int, threads: int | None) -> dict:
    """Every setting in this process, taking turns; also the reference forward that precomputing
    moves out of the step (TRL's compute_ref_log_probs on the same batch)."""
    from hf_finetune.core.model.precision import training_autocast

    model, tokenizer = load(model_dir, threads)
    with tempfile.TemporaryDirectory() as folder:
        built = {setting: build(setting, model, tokenizer, dataset, batch, folder) for setting in SETTINGS}
        for trainer, _ in built.values():
            prepare(trainer)
        tokens = {setting: int(inputs["attention_mask"].sum()) for setting, (_, inputs) in built.items()}
        times: dict[str, list[tuple[float, float]]] = {setting: [] for setting in SETTINGS}
        reference: list[float] = []
        copy_holder, copy_inputs = built["dpo, frozen reference copy"]
        for number in range(rounds + 1):
            order = SETTINGS[number % len(SETTINGS) :] + SETTINGS[: number % len(SETTINGS)]
            for setting in order:
                measured = step(*built[setting])
                if number:  # round 0 warms up
                    times[setting].append(measured)
            started = time.perf_counter()
            with training_autocast(copy_holder.args):
                copy_holder.compute_ref_log_probs(copy_holder.ref_model, copy_inputs)
            if number:
                reference.append(time.perf_counter() - started)
    return {
        setting: {
            "step_seconds": statistics.median(wall for wall, _ in times[setting]),
            "step_cpu_seconds": statistics.median(cpu for _, cpu in times[setting]),
            "tokens": tokens[setting],
        }
        for setting in SETTINGS
    } | {"reference_forward_seconds": statistics.median(reference)}


def main() -> None:
    global PRECISION
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (the book's batch: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--shape", default="gpt2", help="a shape of `python -m hf_finetune.tiny`")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: what a run chooses for this machine")  # fmt: skip
    parser.add_argument("--memory", action="store_true", help="also each setting's peak memory, in its own process")
    parser.add_argument("--dataset", default=str(PAIRS), help="preference pairs (default: the book's, in ../shared)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: the memory of one setting
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    from hf_finetune.core.model.precision import hardware_precision

    PRECISION = hardware_precision(torch.device("cpu")).precision if args.precision == "auto" else args.precision
    PRECISION = "fp32" if PRECISION == "no" else PRECISION
    if args.one:
        print(json.dumps(memory(args.one, args.model_dir, args.dataset, args.batch, args.threads)))
        return

    threads = args.threads or torch.get_num_threads()
    print(f"GPT-2 shape '{args.shape}', random weights, every parameter trainable, AdamW, CPU, {threads} thread(s), "
          f"{PRECISION}; batch: the first {args.batch} pairs of {args.dataset}; load average before: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    wall, cpu = time.time(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(Path(folder) / "model")
        subprocess.run([sys.executable, "-m", "hf_finetune.tiny", "--shape", args.shape, "--tokenizer", str(TOKENIZER),
                        "--output", model_dir], check=True, capture_output=True)  # fmt: skip
        timed = timing(model_dir, args.dataset, args.batch, args.rounds, args.threads)
        memories = {}
        for setting in SETTINGS if args.memory else ():
            output = subprocess.run(
                [sys.executable, __file__, "--one", setting, "--model_dir", model_dir, "--dataset", args.dataset,
                 "--batch", str(args.batch), "--precision", PRECISION,
                 *(["--threads", str(args.threads)] if args.threads else [])],
                check=True, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            )  # fmt: skip
            memories[setting] = json.loads(output.stdout.strip().splitlines()[-1])

    sft = timed["sft"]
    print(f"median of {args.rounds} rounds after a warm-up; load average after: {os.getloadavg()[0]:.2f}; the whole "
          f"benchmark {time.time() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU (this process)\n")
    memory_header = f" {'peak MiB':>9} {'resting MiB':>12} {'peak vs sft':>12}" if memories else ""
    print(f"{'setting':28} {'tokens':>7} {'step (s)':>9} {'CPU (s)':>8} {'vs sft':>7} {'CPU vs sft':>11}{memory_header}")
    for setting in SETTINGS:
        t = timed[setting]
        line = (f"{setting:28} {t['tokens']:>7} {t['step_seconds']:>9.2f} {t['step_cpu_seconds']:>8.2f} "
                f"{t['step_seconds'] / sft['step_seconds']:>6.2f}x {t['step_cpu_seconds'] / sft['step_cpu_seconds']:>10.2f}x")
        if memories:
            m = memories[setting]
            line += (f" {m['peak_mib']:>9.0f} {m['resting_mib']:>12.0f} "
                     f"{m['peak_mib'] / memories['sft']['peak_mib']:>11.2f}x")  # fmt: skip
        print(line)
    print(f"\nthe reference forward on the batch (what --precompute_ref_log_probs does once per pair, before "
          f"training): {timed['reference_forward_seconds']:.2f} s")
    default = timed["dpo (default)"]
    print(f"DPO step (default) / SFT step: {default['step_seconds'] / sft['step_seconds']:.2f}x wall, "
          f"{default['step_cpu_seconds'] / sft['step_cpu_seconds']:.2f}x CPU (target: <= 3x)")


if __name__ == "__main__":
    main()
