"""Expected calibration error (ECE) and its reliability bins, for any method whose model gives
probabilities (the classifiers' classes, the reward model's pairwise probability).

The examples are put in 15 equal-width bins by their confidence (the top class's probability,
bins (0, 1/15], (1/15, 2/15], ...); ECE is the mean over bins, weighted by their examples, of
|accuracy - mean confidence| (Guo et al. 2017, "On Calibration of Modern Neural Networks").
scikit-learn's `calibration_curve` gives a binary positive-class curve without the bins' sizes,
and `evaluate` has no ECE, so it is computed here.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width confidence bins (see the module's docstring)."""
    counts, confidence, accuracy = reliability_bins(probabilities, labels, bins)
    return float(np.sum(counts * np.abs(accuracy - confidence)) / max(counts.sum(), 1))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS):
    """Per confidence bin: its examples, their mean confidence and their accuracy (0 where empty)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == np.asarray(labels)
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    bin_of = np.searchsorted(inner_edges, confidence, side="left")  # (lower, upper]
    counts = np.bincount(bin_of, minlength=bins)
    seen = np.maximum(counts, 1)
    mean_confidence = np.bincount(bin_of, weights=confidence, minlength=bins) / seen
    accuracy = np.bincount(bin_of, weights=correct, minlength=bins) / seen
    return counts, mean_confidence, accuracy
