"""What does one training step of each preference algorithm cost against DPO's? Ratios measured in one run.

    python benchmarks/preference_losses.py [--batch 8] [--rounds 3] [--shape gpt2] [--threads N] [--precision auto]
    python benchmarks/preference_losses.py --quick      # tiny shape, batch 4, one round: shows it works

GPT-2 shape (random weights, the GPT-2 tokenizer), every parameter trainable, AdamW, on CPU, in the
precision a run chooses for this machine. The batch is the first --batch pairs of the book's preference
data, encoded as the preference method encodes them, and each setting is built as `hf-finetune
preference --algorithm NAME` builds it (its defaults):
- dpo: TRL's DPOTrainer, the reference's log-probabilities computed once before training, the LM head
  at the answers' tokens only;
- kto: TRL's KTOTrainer on the same pairs unpaired (2 x --batch examples: each chosen and each rejected
  answer alone, so the step sees the same answers), with its KL pass (each prompt with another
  example's answer, no gradient), the reference precomputed, the LM head at the answers only;
- orpo, simpo, cpo: trl.experimental's ORPOTrainer and CPOTrainer (no reference), which run the LM head
  at every position.

The settings take turns, one optimizer step each per round, in a rotating order, so load from other
jobs hits them alike; the median per setting after a warm-up round (wall clock and CPU time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dpo_step  # noqa: E402  (its model loading, optimizer step and paths)

SETTINGS = ("dpo", "kto", "orpo", "simpo", "cpo")


def build(algorithm: str, model, tokenizer, dataset: str, batch: int, folder: str):
    """(trainer, its batch) of one algorithm, on its own copy of `model`."""
    import copy

    import datasets
    from transformers import TrainingArguments

    from hf_finetune.methods.preference.arguments import PreferenceArguments, trainer_config_from
    from hf_finetune.methods.preference.kto import KTOPreferenceTrainer
    from hf_finetune.methods.preference.reference_free import build_reference_free_trainer
    from hf_finetune.methods.preference.trainer import build_preference_trainer
    from hf_finetune.methods.text.pair_encoding import encode_pair
    from hf_finetune.methods.text.pairs import load_preference_data

    entries = list(load_preference_data(dataset, None, None, drop_identical_pairs=True).splits["train"])[:batch]
    pairs = datasets.Dataset.from_list([encode_pair(tokenizer, entry, 1024, "1024 tokens")[0] for entry in entries])
    examples = 2 * batch if algorithm == "kto" else batch
    args = TrainingArguments(output_dir=folder, report_to="none", use_cpu=True, per_device_train_batch_size=examples,
                             disable_tqdm=True, bf16=dpo_step.PRECISION == "bf16",
                             train_sampling_strategy="sequential" if algorithm == "kto" else "random")  # fmt: skip
    preference = PreferenceArguments(algorithm=algorithm, loss_type="sigmoid")
    config = trainer_config_from(args, preference, 1024)
    model = copy.deepcopy(model)
    if algorithm == "dpo":
        trainer = build_preference_trainer(model, config, pairs, None, tokenizer, callbacks=[])
    elif algorithm == "kto":
        trainer = build_preference_trainer(model, config, pairs, None, tokenizer, callbacks=[],
                                           trainer_class=KTOPreferenceTrainer)  # fmt: skip
    else:
        trainer = build_reference_free_trainer(algorithm, model, config, pairs, None, tokenizer, callbacks=[])
    return trainer, next(iter(trainer.get_train_dataloader()))


def timing(model_dir: str, dataset: str, batch: int, rounds: int, threads: int | None) -> dict:
    model, tokenizer = dpo_step.load(model_dir, threads)
    with tempfile.TemporaryDirectory() as folder:
        built = {setting: build(setting, model, tokenizer, dataset, batch, folder) for setting in SETTINGS}
        for trainer, _ in built.values():
            dpo_step.prepare(trainer)
        times: dict[str, list[tuple[float, float]]] = {setting: [] for setting in SETTINGS}
        for number in range(rounds + 1):
            order = SETTINGS[number % len(SETTINGS) :] + SETTINGS[: number % len(SETTINGS)]
            for setting in order:
                measured = dpo_step.step(*built[setting])
                if number:  # round 0 warms up
                    times[setting].append(measured)
    return {setting: {"step_seconds": statistics.median(wall for wall, _ in times[setting]),
                      "step_cpu_seconds": statistics.median(cpu for _, cpu in times[setting])}
            for setting in SETTINGS}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (the book's batch: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up round")
    parser.add_argument("--shape", default="gpt2", help="a shape of `python -m hf_finetune.tiny`")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: what a run chooses for this machine")  # fmt: skip
    parser.add_argument("--dataset", default=str(dpo_step.PAIRS), help="preference pairs (default: the book's)")
    parser.add_argument("--quick", action="store_true", help="tiny shape, batch 4, one round: a check that it runs")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.batch, args.rounds = "tiny", 4, 1
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    from hf_finetune.core.model.precision import hardware_precision

    precision = hardware_precision(torch.device("cpu")).precision if args.precision == "auto" else args.precision
    dpo_step.PRECISION = "fp32" if precision == "no" else precision
    threads = args.threads or torch.get_num_threads()
    print(f"GPT-2 shape '{args.shape}', random weights, every parameter trainable, AdamW, CPU, {threads} thread(s), "
          f"{dpo_step.PRECISION}; batch: the first {args.batch} pairs of {args.dataset}; load average before: "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    wall = time.time()
    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(Path(folder) / "model")
        subprocess.run([sys.executable, "-m", "hf_finetune.tiny", "--shape", args.shape, "--tokenizer",
                        str(dpo_step.TOKENIZER), "--output", model_dir], check=True, capture_output=True)  # fmt: skip
        timed = timing(model_dir, args.dataset, args.batch, args.rounds, args.threads)
    print(f"median of {args.rounds} round(s) after a warm-up; load average after: {os.getloadavg()[0]:.2f}; "
          f"{time.time() - wall:.0f} s in all\n")
    dpo = timed["dpo"]
    print(f"{'algorithm':10} {'step (s)':>9} {'CPU (s)':>8} {'vs dpo':>7} {'CPU vs dpo':>11}")
    for setting in SETTINGS:
        t = timed[setting]
        print(f"{setting:10} {t['step_seconds']:>9.3f} {t['step_cpu_seconds']:>8.3f} "
              f"{t['step_seconds'] / dpo['step_seconds']:>6.2f}x {t['step_cpu_seconds'] / dpo['step_cpu_seconds']:>10.2f}x")


if __name__ == "__main__":
    main()
