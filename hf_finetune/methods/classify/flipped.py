"""The test texts runs of a classifier label differently, for `hf-finetune compare` (compare.py):
each run's test_predictions.jsonl, matched by text and true label; a --seeds run's label for a
text is the one most of its seeds gave. A run is compare's ComparedRun (its name, seeds, run
folders, label names, and whether its seeds cut their own splits)."""

from __future__ import annotations

import json
from collections import Counter

from hf_finetune.core.errors import UserError
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.classify.report import TEST_PREDICTIONS

SHOWN_EXAMPLES = 20  # test texts labelled differently, listed in compare.md and on screen


def predictions(run) -> dict[tuple[str, str], Counter]:
    """(text, true label) -> how often each label was predicted for it, once per run folder that scored
    it (a seed's split draws its own test texts)."""
    votes: dict[tuple[str, str], Counter] = {}
    for folder in run.run_folders:
        seen = set()
        path = folder / TEST_PREDICTIONS
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 (byte {error.start}); train that run again.") from None
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
                key, guess = (row["text"], row["label"]), row["predicted"]
                if not all(isinstance(value, str) for value in (*key, guess)):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise UserError(f"{path}, line {number}: not a test prediction (text, label, predicted); train that "
                                f"run again.") from None  # fmt: skip
            if key not in seen:  # a text repeated in the test split counts once per run
                seen.add(key)
                votes.setdefault(key, Counter())[guess] += 1
    return votes


def majority(votes: Counter) -> str:
    """The label most of the run's seeds predicted ('a or b' when they are tied)."""
    ranked = votes.most_common()
    tied = sorted(label for label, count in ranked if count == ranked[0][1])
    return " or ".join(tied)


def flipped_examples(runs: list) -> dict | None:
    """The test texts every run scored, and those the runs label differently (None: not classifiers)."""
    if runs[0].label_names is None:
        return None
    files = [folder / TEST_PREDICTIONS for run in runs for folder in run.run_folders]
    missing = next((path for path in files if not path.is_file()), None)
    if missing is not None:
        return {"missing": str(missing)}
    votes = [predictions(run) for run in runs]
    shared = [key for key in votes[0] if all(key in vote for vote in votes[1:])]
    examples = []
    for text, label in shared:
        predicted = {run.name: majority(vote[(text, label)]) for run, vote in zip(runs, votes)}
        if len(set(predicted.values())) > 1:
            examples.append({"text": text, "label": label, "predicted": predicted})
    right = {run.name: sum(example["predicted"][run.name] == example["label"] for example in examples) for run in runs}
    return {"shared": len(shared), "examples": examples, "right": right}


def flipped_section(flipped: dict, runs: list) -> str:
    if "missing" in flipped:
        return (f"{flipped['missing']} does not exist (runs trained before it was written), so the test texts "
                "the runs label differently cannot be listed.")
    examples = flipped["examples"]
    right = ", ".join(f"{name} right on {count}" for name, count in flipped["right"].items())
    lines = [f"Of the {flipped['shared']} test texts every run scored, {len(examples)} "
             f"{'is' if len(examples) == 1 else 'are'} labelled differently" + (f" ({right})." if examples else ".")]
    if any(run.seeds for run in runs):
        lines.append("A --seeds run's label is the one most of its seeds gave" + (
            " (a run whose seeds cut their own splits tests each seed on other texts: only texts every run scored are "
            "compared)." if any(run.varies_split for run in runs) else "."))  # fmt: skip
    if examples:
        shown = examples[:SHOWN_EXAMPLES]
        lines.append(markdown_table(["text", "true", *(run.name for run in runs)],
                                    [[example["text"][:120], example["label"], *example["predicted"].values()]
                                     for example in shown]))  # fmt: skip
        if len(examples) > len(shown):
            lines.append(f"The other {len(examples) - len(shown)} are in compare.json (with --output).")
    return "\n\n".join(lines)
