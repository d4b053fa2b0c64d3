"""ROUGE-L of generated responses against their references."""

from __future__ import annotations

from hf_finetune.core.report.console import run_log


def rouge_l(predictions: list[str], references: list[str]) -> tuple[list[float], str]:
    """ROUGE-L F1 per response (stemmed), and which implementation computed it.

    `evaluate`'s rouge module comes from the Hub; offline it cannot be loaded, and the
    `rouge_score` package it wraps computes the same figure directly.
    """
    try:
        import evaluate

        metric = evaluate.load("rouge")
        scores = metric.compute(
            predictions=predictions, references=references, rouge_types=["rougeL"], use_aggregator=False,
            use_stemmer=True,
        )["rougeL"]
        return [float(score) for score in scores], "evaluate.load('rouge')"
    except Exception as error:  # offline: FileNotFoundError; no network: ConnectionError, ...
        run_log.debug(  # not a problem: the report names the implementation used
            f"ROUGE-L: evaluate.load('rouge') is unavailable ({error.__class__.__name__}); "
            f"using the rouge_score package directly."
        )
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(reference, prediction)["rougeL"].fmeasure for prediction, reference in zip(predictions, references)]
    return scores, "rouge_score package (evaluate's rouge module could not be loaded)"
