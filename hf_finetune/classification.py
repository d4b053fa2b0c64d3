"""The head method: a causal LM with a class head read at the last real token.

`train_classifier` runs the whole story through the layers: source -> preparation -> model ->
encoding -> Trainer -> results. Recipes (recipes/spam.py) only choose its defaults.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml
from transformers import DataCollatorWithPadding, TrainingArguments

from .arguments import (
    CLASSIFICATION_ARGUMENTS,
    DataArguments,
    ModelArguments,
    RunArguments,
    config_snapshot,
    parse_arguments,
)
from .encoding import context_length, encode_for_head
from .errors import run_cli
from .cards import classification_card, split_table
from .hub import defer_push_to_end, prepare_hub_push, push_run, repo_creation_reported
from .lora import LoraArguments, apply_lora, describe_lora, save_trained_model
from .metrics import classification_metrics
from .modeling import TrainablePolicy, apply_trainable_policy, count_parameters, load_classifier, load_tokenizer
from .preparation import SPLIT_PREFIX, SPLITS, ClassificationData, prepare_classification
from .reliability import train_reliably
from .results import atomic_write_json, atomic_write_text, history_from_log, markdown_table, plot_curves
from .sources import load_source
from .training import (
    EvaluateAtEpochEnd,
    OrderedEvalTrainer,
    device_name,
    guard_output_dir,
    precision_name,
    prepare_training_args,
    print_plan,
)

REPORT_EXAMPLES = 8


def load_classification_data(data_args: DataArguments, training_args: TrainingArguments) -> ClassificationData:
    with training_args.main_process_first(desc="loading data"):
        source = load_source(
            data_args.dataset,
            url=data_args.dataset_url,
            cache_dir=data_args.cache_dir,
            columns=(data_args.text_column, data_args.label_column),
        )
    data = prepare_classification(
        source,
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        class_names=data_args.class_names,
        balance=data_args.balance,
        split=data_args.split,
        seed=training_args.seed,
    )
    data.notes.insert(0, source.origin)
    return data


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def train_classifier(
    model_args: ModelArguments,
    data_args: DataArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
    lora_args: LoraArguments | None = None,
) -> dict:
    lora_args = lora_args or LoraArguments()
    guard_output_dir(training_args.output_dir, run_args.overwrite_output_dir)
    prepare_training_args(training_args)
    prepare_hub_push(training_args)
    # Before the Trainer exists: building the reference TrainingArguments resets accelerate's state.
    config = config_snapshot(model_args, data_args, training_args, lora_args)
    policy = TrainablePolicy.parse(model_args.trainable)
    data = load_classification_data(data_args, training_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    model = load_classifier(model_args.model_name_or_path, data.label_names, tokenizer, model_args.trust_remote_code)
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        what_trains = describe_lora(model)
    else:
        apply_trainable_policy(model, policy)
        what_trains = policy.describe()
    model.config.use_cache = False  # no generation while training; checkpointing needs it off
    trainable, total = count_parameters(model)

    max_length = data_args.max_length or context_length(tokenizer, model.config)
    with training_args.main_process_first(desc="tokenizing"):
        encoded, truncated = encode_for_head(data.splits, tokenizer, max_length)
    train_sample = encoded["train"].shuffle(seed=training_args.seed, keep_in_memory=True).select(
        range(min(data_args.train_eval_samples, len(encoded["train"])))
    )

    print_plan(
        {
            "method": "head (class read at the last real token)",
            "model": f"{model_args.model_name_or_path} ({model.__class__.__name__})",
            "data": "; ".join(data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in data.sizes().items()),
            "labels": ", ".join(f"{i}={name}" for i, name in data.id2label.items()),
            "max length": f"{max_length} tokens ({truncated} texts truncated)",
            "trainable": f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%): {what_trains}",
            "device": device_name(training_args),
            "precision": precision_name(training_args),
            "output": training_args.output_dir,
        },
        training_args,
    )

    with repo_creation_reported(training_args):
        trainer = OrderedEvalTrainer(
            model=model,
            args=training_args,
            train_dataset=encoded["train"],
            eval_dataset={"validation": encoded["validation"], "train": train_sample},
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=lambda prediction: {
                key: value
                for key, value in classification_metrics(
                    prediction.label_ids, prediction.predictions.argmax(-1), data.label_names
                ).items()
                if key != "confusion_matrix"
            },
            callbacks=[EvaluateAtEpochEnd()],
        )
    defer_push_to_end(trainer)
    started, cpu_started = time.time(), time.process_time()
    train_result = train_reliably(trainer, training_args, run_args.skip_nonfinite_batches)
    training_seconds, training_cpu_seconds = time.time() - started, time.process_time() - cpu_started

    results: dict = {
        "train_runtime_seconds": round(training_seconds, 2),
        "train_cpu_seconds": round(training_cpu_seconds, 2),  # this process's CPU time: steady on a busy machine
        "train_loss": train_result.training_loss,
    }
    predictions: dict[str, np.ndarray] = {}
    for split in SPLITS:
        output = trainer.predict(encoded[split], metric_key_prefix=SPLIT_PREFIX[split])
        probabilities = softmax(output.predictions)
        predictions[split] = probabilities
        for key, value in classification_metrics(output.label_ids, probabilities.argmax(-1), data.label_names).items():
            results[f"{SPLIT_PREFIX[split]}_{key}"] = value
    save_trained_model(trainer, training_args.output_dir, model_args.model_name_or_path, lora_args)

    if trainer.is_world_process_zero():
        write_classification_results(
            Path(training_args.output_dir),
            results,
            history_from_log(trainer.state.log_history, len(encoded["train"])),
            data,
            predictions["test"],
            len(encoded["train"]),
            config=config,
            title=f"{model_args.model_name_or_path} on {data_args.dataset}, head method",
        )
    if training_args.push_to_hub:
        push_run(trainer, classification_card(model_args.model_name_or_path, data, results, what_trains, training_args))
    return results


def write_classification_results(
    folder: Path,
    results: dict,
    history: list[dict],
    data: ClassificationData,
    test_probabilities: np.ndarray,
    examples_per_epoch: int,
    config: dict,
    title: str,
    extra_sections: tuple[str, ...] = (),
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    plot_curves(
        history,
        {"train_loss": "Training loss", "eval_validation_loss": "Validation loss"},
        "Loss",
        folder / "loss",
        examples_per_epoch,
    )
    plot_curves(
        history,
        {"eval_train_accuracy": "Training accuracy (sample)", "eval_validation_accuracy": "Validation accuracy"},
        "Accuracy",
        folder / "accuracy",
        examples_per_epoch,
    )
    test = data.splits["test"]
    examples = []
    for index in range(min(REPORT_EXAMPLES, len(test))):
        predicted = int(test_probabilities[index].argmax())
        examples.append(
            [
                test[index]["text"][:120],
                data.label_names[test[index]["label"]],
                data.label_names[predicted],
                float(test_probabilities[index][predicted]),
            ]
        )
    report = "\n\n".join(
        [
            f"# {title}",
            split_table(data, results),
            f"Training took {results['train_runtime_seconds']:.1f} s. Precision, recall and F1 are for the class "
            f"'{data.label_names[-1]}'" + (" (binary)." if len(data.label_names) == 2 else " (macro average)."),
            *extra_sections,
            "## Curves\n\n![loss](loss.png)\n\n![accuracy](accuracy.png)",
            "## Test confusion matrix (rows: true, columns: predicted)\n\n"
            + markdown_table(
                ["", *data.label_names],
                [[name, *row] for name, row in zip(data.label_names, results["test_confusion_matrix"])],
            ),
            "## Example test predictions\n\n"
            + markdown_table(["text", "true", "predicted", "probability"], examples),
        ]
    )
    atomic_write_text(folder / "report.md", report + "\n")
    # Written last: its presence marks the run as finished.
    atomic_write_json(folder / "all_results.json", {**results, "label_names": data.label_names, "history": history})


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, run_args, training_args, lora_args = parse_arguments(
        (*CLASSIFICATION_ARGUMENTS, LoraArguments), argv, defaults
    )
    return train_classifier(model_args, data_args, run_args, training_args, lora_args)


if __name__ == "__main__":
    run_cli(main)
