"""What the classifier methods (head, label-token) report: metrics from scikit-learn (they work
offline, unlike `evaluate.load`), class probabilities per split, and the run folder's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from transformers import Trainer

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.data.splits import SPLIT_PREFIX, SPLITS
from hf_finetune.core.report.command import command_markdown
from hf_finetune.core.report.curves import history_from_log, plot_curves
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.classify.data import ClassificationData

REPORT_EXAMPLES = 8
TEST_PREDICTIONS = "test_predictions.jsonl"  # one line per test text: what `hf_finetune.compare` lines up
CLASSIFIER_LIMITS = [
    "Trained on one small data set; texts unlike it (other languages, domains, eras) get unreliable labels.",
    "The reported figures come from one seeded split; expect a few points of variation with another.",
    "Probabilities are not calibrated; do not use them as certainties, nor the labels as sole decisions about people.",
    "Inputs longer than the model's context are truncated.",
]


def classification_metrics(labels, predictions, label_names: list[str]) -> dict:
    """Accuracy, precision, recall, F1 (of class 1 when binary, else macro) and the confusion matrix."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    binary = len(label_names) == 2
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels,
        predictions,
        average="binary" if binary else "macro",
        pos_label=1,
        labels=None if binary else list(range(len(label_names))),
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=list(range(len(label_names)))).tolist(),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def evaluate_splits(trainer: Trainer, encoded, label_names: list[str], class_scores=lambda predictions: predictions):
    """Predict every split: `{prefix}_{metric}` results and each split's class probabilities.

    `class_scores` picks the per-class scores out of what the trainer's prediction step returns."""
    results: dict = {}
    probabilities: dict[str, np.ndarray] = {}
    outputs = {}
    for split in SPLITS:
        output = trainer.predict(encoded[split], metric_key_prefix=SPLIT_PREFIX[split])
        probabilities[split] = softmax(np.asarray(class_scores(output.predictions), dtype=np.float64))
        metrics = classification_metrics(output.label_ids, probabilities[split].argmax(-1), label_names)
        results.update({f"{SPLIT_PREFIX[split]}_{key}": value for key, value in metrics.items()})
        outputs[split] = output
    # The chance level: the accuracy of always answering the test split's most frequent class.
    counts = np.bincount(np.asarray(outputs["test"].label_ids), minlength=len(label_names))
    results["test_chance_accuracy"] = float(counts.max() / max(counts.sum(), 1))
    return results, probabilities, outputs


def classifier_headline(results: dict, label_names: list[str]) -> dict[str, str]:
    """The closing summary's figures: test accuracy and F1 (of the last class when binary, else macro)."""
    f1 = f"test F1 ({label_names[-1]})" if len(label_names) == 2 else "test F1 (macro)"
    chance = results.get("test_chance_accuracy")
    against = f" (chance level {chance:.4f})" if chance is not None else ""
    return {"test accuracy": f"{results['test_accuracy']:.4f}{against}", f1: f"{results['test_f1']:.4f}"}


def chance_sentence(data: ClassificationData, results: dict) -> str:
    """The headline against the chance level: always answering the test split's majority class."""
    labels = np.asarray(data.splits["test"]["label"])
    counts = np.bincount(labels, minlength=len(data.label_names))
    majority = data.label_names[int(counts.argmax())]
    chance = results.get("test_chance_accuracy", counts.max() / max(counts.sum(), 1))
    return (f"**Test accuracy {results['test_accuracy']:.4f}** against a chance level of {chance:.4f}: always "
            f"answering '{majority}', the most frequent class of the {len(labels)} test texts "
            f"({', '.join(f'{name} {count}' for name, count in zip(data.label_names, counts))}).")  # fmt: skip


def split_table(data, results: dict, extra: tuple[str, ...] = ()) -> str:
    """Examples and metrics per split; `extra` names further per-split results (e.g. format_adherence)."""
    keys = ("accuracy", "precision", "recall", "f1", *extra)
    return markdown_table(
        ["split", "examples", "accuracy", "precision", "recall", "F1", *(key.replace("_", " ") for key in extra)],
        [
            # the texts scored: the training split's may be a sample (methods/classify/final_sample.py)
            [split, results.get(f"{prefix}_examples", len(data.splits[split]))]
            + [results[f"{prefix}_{key}"] for key in keys]
            for split, prefix in SPLIT_PREFIX.items()
        ],
    )


def classification_data_lines(data: ClassificationData) -> list[str]:
    return [
        *data.notes,
        ", ".join(f"{split} {size}" for split, size in data.sizes().items()),
        "labels: " + ", ".join(f"{index}={name}" for index, name in data.id2label.items()),
    ]


def write_classification_results(
    folder: Path,
    results: dict,
    log_history: list[dict],
    data: ClassificationData,
    test_probabilities: np.ndarray,
    config: dict,
    title: str,
    extra_sections: tuple[str, ...] = (),
) -> None:
    """config.yaml, loss/accuracy plots, report.md, test_predictions.jsonl, and all_results.json (last: it
    marks the run finished)."""
    examples_per_epoch = len(data.splits["train"])
    history = history_from_log(log_history, examples_per_epoch)
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
        bounds=(0, 1),
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
            *command_markdown(),
            "Data: " + "; ".join(data.notes) + ".",
            chance_sentence(data, results),
            split_table(data, results),
            f"Training took {results['train_runtime_seconds']:.1f} s. Precision, recall and F1 are for the class "
            f"'{data.label_names[-1]}'" + (" (binary)." if len(data.label_names) == 2 else " (macro average)."),
            *extra_sections,
            *([leakage_markdown(results["leakage"])] if "leakage" in results else []),
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
    atomic_write_text(
        folder / TEST_PREDICTIONS,
        "".join(
            json.dumps({"text": row["text"], "label": data.label_names[row["label"]],
                        "predicted": data.label_names[int(scores.argmax())], "probability": float(scores.max())})
            + "\n"
            for row, scores in zip(test, test_probabilities)
        ),
    )
    # Written last: its presence marks the run as finished.
    split_seed = {} if data.split_seed is None else {"split_seed": data.split_seed}
    atomic_write_json(folder / "all_results.json", {**results, **split_seed, "label_names": data.label_names,
                                                    "history": history})  # fmt: skip
