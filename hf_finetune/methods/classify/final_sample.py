"""The final figures on a large training split from a stated sample.

After training, the classifiers score every split. The training split's figures show how well the
model fits what it saw; a seeded sample of its texts says that as well as all of them, and on a large
split (rotten_tomatoes: 8,530 texts) scoring all of them can take longer than the training. So the
training split is scored on `--final_train_sample` texts (2,000 by default; 0: all), picked with the
run's seed and kept in file order; validation and test are always scored whole.
"""

from __future__ import annotations

import numpy as np

from hf_finetune.methods.classify.arguments import DEFAULT_SAMPLE  # noqa: F401 - the tests' name for it


def final_figure_splits(encoded, sample: int, seed: int) -> tuple[dict, dict[str, int]]:
    """The splits the final figures score (the training split cut to `sample` texts, picked with `seed`
    and kept in order), and `train_examples`: how many training texts they score."""
    train = encoded["train"]
    if sample == 0 or len(train) <= sample:
        return dict(encoded), {"train_examples": len(train)}
    picked = np.sort(np.random.default_rng(seed).choice(len(train), size=sample, replace=False))
    return {**encoded, "train": train.select(picked.tolist())}, {"train_examples": sample}


def sample_note(results: dict, train_size: int) -> tuple[str, ...]:
    """The report's section on the training split's figures when they come from a sample (else none)."""
    scored = results.get("train_examples", train_size)
    if scored >= train_size:
        return ()
    return (f"## Training split\n\nIts figures come from a seeded sample of {scored:,} of its {train_size:,} texts "
            f"(`--final_train_sample`; 0 scores every one); validation and test are scored whole.",)  # fmt: skip
