"""Classification metrics from scikit-learn (they work offline, unlike `evaluate.load`)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


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
