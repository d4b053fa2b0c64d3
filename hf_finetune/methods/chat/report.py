"""The run folder of a causal LM chat run: comparison table (markdown + json), loss curves, config."""

from __future__ import annotations

from pathlib import Path

import yaml

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.report.command import command_markdown
from hf_finetune.core.report.curves import plot_curves
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table

COMPARISON_REPORT = "comparison.md"
METHOD_LEGENDS = {
    "copy_labels": "copy-labels (whole text)",
    "masked": "masked (answers only)",
    "completion_only": "TRL completion-only",
}


def chat_headline(row: dict) -> dict[str, str]:
    """The closing summary's figures of one method's run."""
    lines = {"training answers exact": f"{row['training_exact']} of {row['training_asked']} (greedy)"}
    if row.get("heldout"):
        heldout = row["heldout"]
        expected = f" (expected {heldout['expected']!r})" if heldout["expected"] else ""
        lines["held-out answer"] = f"{heldout['answer']!r}{expected}"
    return lines


def comparison_table(rows: list[dict]) -> str:
    """One line per method: time, tokens with loss, final loss, answers (comparison.md's table)."""
    return markdown_table(
        [
            "method",
            "training time (s)",
            "tokens carrying loss (per epoch)",
            "final training loss",
            "held-out answer",
            "training answers exact",
            "first epoch with all exact",
            "training answers",
        ],
        comparison_rows(rows),
    )


def comparison_rows(rows: list[dict]) -> list[list]:
    table = []
    for row in rows:
        heldout = row.get("heldout")
        table.append(
            [
                row["method"],
                row["train_runtime_seconds"],
                f"{row['loss_tokens']} of {row['tokens']}",
                row["final_train_loss"],
                f"{heldout['answer']!r}" if heldout else "",
                f"{row['training_exact']}/{row['training_asked']}",
                "not measured" if row.get("exact_answers_per_epoch") is None
                else row["first_epoch_all_answers_exact"] or "not reached",
                "; ".join(repr(item["answer"]) for item in row["training_answers"]),
            ]
        )
    return table


def answers_by_question(rows: list[dict]) -> str:
    header = ["question", "expected", *(row["method"] for row in rows)]
    lines = []
    for index, item in enumerate(rows[0]["training_answers"]):
        lines.append([item["question"], item["expected"], *(row["training_answers"][index]["answer"] for row in rows)])
    if rows[0].get("heldout"):
        heldout = rows[0]["heldout"]
        lines.append(
            [f"(held out) {heldout['question']}", heldout["expected"] or "", *(row["heldout"]["answer"] for row in rows)]
        )
    return markdown_table(header, lines)


def coinciding_curves(histories: dict[str, list[dict]], tolerance: float = 1e-3) -> list[tuple[str, str]]:
    """Pairs of methods whose loss curves lie on each other (one hides the other in the plot)."""
    names = list(histories)
    pairs = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            a, b = histories[first], histories[second]
            if a and len(a) == len(b) and all(abs(p["train_loss"] - q["train_loss"]) <= tolerance for p, q in zip(a, b)):
                pairs.append((first, second))
    return pairs


def write_chat_results(
    folder: Path, rows: list[dict], histories: dict[str, list[dict]], examples_per_epoch: int, config: dict, title: str
) -> None:
    """The comparison of one or more methods: their rows, and their loss histories plotted."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    merged = [
        {"epoch": point["epoch"], f"{method}_train_loss": point["train_loss"]}
        for method, history in histories.items()
        for point in history
    ]
    plot_curves(
        merged,
        {f"{method}_train_loss": METHOD_LEGENDS.get(method, method) for method in histories},
        "Training loss",
        folder / "loss",
        examples_per_epoch,
    )
    table = comparison_table(rows)
    notes = (
        "Training losses are averages over the tokens that carry loss, so copy-labels (every token) is not "
        "directly comparable with the two answer-only methods. The final training loss is the last one logged. "
        "Training time includes the greedy answers generated at every epoch's end (answer_tracking_seconds in "
        "comparison.json). Answers are greedy generations."
    )
    overlaps = "".join(
        f" The {first} and {second} curves coincide (same targets, same start): one hides the other."
        for first, second in coinciding_curves(histories)
    )
    report = "\n\n".join(
        [
            f"# {title}",
            *command_markdown(),
            table,
            notes,
            "## Answers\n\n" + answers_by_question(rows),
            "## Loss\n\n![loss](loss.png)" + ("\n\n" + overlaps.strip() if overlaps else ""),
            # The same data for every method: one section.
            *([leakage_markdown(rows[0]["leakage"])] if "leakage" in rows[0] else []),
        ]
    )
    atomic_write_text(folder / COMPARISON_REPORT, report + "\n")
    atomic_write_json(folder / "comparison.json", rows)
    # Written last: its presence marks the run as finished.
    atomic_write_json(folder / "all_results.json", {"methods": rows, "history": histories})
