"""One epoch of recipes/spam.py against a straightforward tutorial-style loop, in one run.

The tutorial-style loop pads every text to the longest training text (107 GPT-2 tokens for
this split; the book reports 120 for its own), shuffles, and trains with a plain PyTorch loop.
The recipe pads each batch to its own longest text and groups batches by length. Both train
the same layers (last block + final norm + head) of the same random-init model on the same
1045 training texts with batch 8, fp32.

Then (unless --accuracy_epochs 0) both train a tiny model fully for a few epochs to check that
the faster pipeline's validation accuracy is no worse.

Ratios are printed in wall-clock time and in the process's CPU time; on a machine shared with
other jobs, run with OMP_NUM_THREADS=1 and read the CPU-time ratio.

    OMP_NUM_THREADS=1 python benchmarks/spam_speed.py --tokenizer ../shared/models/gpt2-tokenizer \
        --data ../shared/data/sms_spam_collection/smsspamcollection.zip [--shape gpt2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from hf_finetune import tiny
from hf_finetune.core.data.sources import REGISTRY
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy
from hf_finetune.methods.classify.data import DataArguments, load_classification_data
from hf_finetune.methods.classify.head.train import main as run_recipe
from hf_finetune.recipes.spam import DEFAULTS


def write_model(shape: str, tokenizer_dir: str, folder: Path) -> Path:
    output = folder / f"model-{shape}"
    if not output.exists():
        tiny.main(["--tokenizer", tokenizer_dir, "--shape", shape, "--output", str(output), "--seed", "0"])
    return output


def tutorial_style(model_dir: Path, data_path: str, trainable: str, epochs: int, lr: float, seed: int):
    """Pad everything to the longest training text; plain loop; returns (seconds, validation accuracy)."""
    from transformers import TrainingArguments

    torch.manual_seed(seed)
    data_args = DataArguments(dataset=data_path, class_names=",".join(REGISTRY["sms_spam"].label_names), balance=True)
    data = load_classification_data(data_args, TrainingArguments(output_dir=tempfile.mkdtemp(), seed=seed))
    tokenizer = load_tokenizer(str(model_dir))
    model = load_classifier(str(model_dir), data.label_names, tokenizer)
    apply_trainable_policy(model, TrainablePolicy.parse(trainable))
    model.config.use_cache = False

    def tensors(split):
        ids = tokenizer(list(split["text"]))["input_ids"]
        return ids, torch.tensor(list(split["label"]))

    train_ids, train_labels = tensors(data.splits["train"])
    longest = max(len(ids) for ids in train_ids)

    def padded(ids_list):
        pad = tokenizer.pad_token_id
        ids = [ids[:longest] + [pad] * (longest - len(ids[:longest])) for ids in ids_list]
        ids = torch.tensor(ids)
        return ids, (ids != pad).long()

    inputs, mask = padded(train_ids)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    generator = torch.Generator().manual_seed(seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(train_labels), generator=generator).split(8):
            loss = model(input_ids=inputs[batch], attention_mask=mask[batch], labels=train_labels[batch]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    model.eval()
    val_ids, val_labels = tensors(data.splits["validation"])
    val_inputs, val_mask = padded(val_ids)
    with torch.no_grad():
        predictions = torch.cat(
            [model(input_ids=i, attention_mask=m).logits.argmax(-1) for i, m in zip(val_inputs.split(32), val_mask.split(32))]
        )
    return seconds, cpu_seconds, longest, float((predictions == val_labels).float().mean())


def recipe(model_dir: Path, data_path: str, trainable: str, epochs: int, lr: float, seed: int, evaluate: bool):
    output = Path(tempfile.mkdtemp()) / "run"
    argv = ["--model_name_or_path", str(model_dir), "--dataset", data_path, "--trainable", trainable,
            "--num_train_epochs", str(epochs), "--learning_rate", str(lr), "--seed", str(seed),
            "--save_strategy", "no", "--output_dir", str(output), "--disable_tqdm", "true",
            "--eval_strategy", "steps" if evaluate else "no"]  # fmt: skip
    results = run_recipe(argv, defaults={**DEFAULTS, "dataset": data_path})
    return results["train_runtime_seconds"], results["train_cpu_seconds"], results["eval_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--shape", default="gpt2", choices=sorted(tiny.SHAPES))
    parser.add_argument("--accuracy_epochs", type=int, default=3, help="0 skips the accuracy comparison")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    speed_model = write_model(args.shape, args.tokenizer, folder)
    ours_seconds, ours_cpu, _ = recipe(speed_model, args.data, "last_block", 1, 5e-5, 123, evaluate=False)
    tutorial_seconds, tutorial_cpu, longest, _ = tutorial_style(speed_model, args.data, "last_block", 1, 5e-5, 123)
    report = {
        "speed_shape": args.shape,
        "tutorial_padded_to": longest,
        "epoch_seconds_recipe": round(ours_seconds, 1),
        "epoch_seconds_tutorial_style": round(tutorial_seconds, 1),
        "speedup_per_epoch_wall": round(tutorial_seconds / ours_seconds, 2),
        "epoch_cpu_seconds_recipe": round(ours_cpu, 1),
        "epoch_cpu_seconds_tutorial_style": round(tutorial_cpu, 1),
        "speedup_per_epoch_cpu": round(tutorial_cpu / ours_cpu, 2),
    }
    if args.accuracy_epochs:
        accuracy_model = write_model("tiny", args.tokenizer, folder)
        _, _, ours_accuracy = recipe(accuracy_model, args.data, "all", args.accuracy_epochs, 1e-3, 123, True)
        _, _, _, tutorial_accuracy = tutorial_style(accuracy_model, args.data, "all", args.accuracy_epochs, 1e-3, 123)
        report.update(
            accuracy_run=f"tiny 2x128 model, all layers, {args.accuracy_epochs} epochs, lr 1e-3",
            validation_accuracy_recipe=round(ours_accuracy, 4),
            validation_accuracy_tutorial_style=round(tutorial_accuracy, 4),
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
