"""Results of an instruction-tuning run: greedy test responses, their ROUGE-L (and judge) scores,
and the report."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.report.command import command_markdown
from hf_finetune.core.report.curves import plot_curves
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.text.judge import judge_responses
from hf_finetune.methods.text.prompt import format_request
from hf_finetune.methods.text.responses import generate_responses
from hf_finetune.methods.text.rouge import rouge_l

from .arguments import InstructionArguments


def answer_test_split(model, tokenizer, test, data_args: InstructionArguments) -> dict:
    """Greedy answers to the test entries, their ROUGE-L (and judge) scores, and the time taken."""
    entries = [dict(row) for row in test]
    started = time.time()
    answers = generate_responses(
        model, tokenizer, entries, max_new_tokens=data_args.max_new_tokens, batch_size=data_args.generation_batch_size
    )
    figures: dict = {"test_generation_seconds": round(time.time() - started, 2)}
    responses = [{**entry, "model_response": answer} for entry, answer in zip(entries, answers)]
    scores, how = rouge_l(answers, [entry["output"] for entry in entries])
    for row, score in zip(responses, scores):
        row["rougeL"] = round(score, 4)
    figures.update(test_rougeL=sum(scores) / len(scores), test_examples=len(scores), rouge_implementation=how)
    if data_args.judge_url:
        judged, summary = judge_responses(data_args.judge_url, data_args.judge_model, responses)
        for row, score in zip(responses, judged):
            row["judge_score"] = score
        figures.update(summary)
    return {**figures, "responses": responses}


def write_instruction_results(
    folder: Path,
    results: dict,
    history: list[dict],
    responses: list[dict],
    validation_samples: list[dict],
    tokens_per_epoch: int,
    config: dict,
    title: str,
    report_examples: int,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(folder / "test_responses.json", responses)
    atomic_write_json(folder / "validation_samples.json", validation_samples)
    plot_curves(
        history,
        {
            "train_loss": "Training loss (running)",
            "eval_train_loss": "Training loss (sample)",
            "eval_validation_loss": "Validation loss",
        },
        "Loss",
        folder / "loss",
        tokens_per_epoch,
        top_label="Tokens seen",
    )
    losses = [
        ["before training", results.get("initial_train_sample_loss"), results.get("initial_validation_loss")],
        ["after training", results.get("final_train_sample_loss"), results.get("final_validation_loss")],
    ]
    score_lines = [f"ROUGE-L F1 (stemmed) over {len(responses)} test responses: **{results['test_rougeL']:.4f}** "
                   f"(computed with the {results['rouge_implementation']})."]
    if results.get("judge_mean_score") is not None:
        score_lines.append(
            f"Judge {results['judge_model']} at {results['judge_endpoint']}: mean score "
            f"**{results['judge_mean_score']:.2f}** / 100 over {results['judge_scored']} responses "
            f"({results['judge_unparsed']} answers held no score)."
        )
    examples = "\n\n".join(
        f"### Test example {index + 1}\n\n**Prompt**\n\n```text\n{format_request(row['instruction'], row['input'])}\n```\n\n"
        f"**Reference**: {row['output']}\n\n**Model response**: {row['model_response'] or '(empty)'}"
        + (f"\n\nJudge score: {row['judge_score']}" if "judge_score" in row else "")
        for index, row in enumerate(responses[:report_examples])
    )
    samples = markdown_table(
        ["step", "epoch", "response to the fixed validation example"],
        [[sample["step"], sample["epoch"], sample["response"][:200] or "(empty)"] for sample in validation_samples],
    )
    report = "\n\n".join(
        [
            f"# {title}",
            *command_markdown(),
            markdown_table(["", "training sample loss", "validation loss"], losses),
            f"Training took {results['train_runtime_seconds']:.1f} s for {results['train_tokens_per_epoch']:,} "
            f"tokens per epoch. Test generation took {results['test_generation_seconds']:.1f} s.",
            "\n".join(score_lines),
            *([leakage_markdown(results["leakage"])] if "leakage" in results else []),
            "## Loss\n\n![loss](loss.png)",
            "## The fixed validation example during training\n\n"
            f"```text\n{validation_samples[0]['prompt'] if validation_samples else ''}\n```\n\n{samples}",
            "## Example test responses\n\n" + examples,
        ]
    )
    atomic_write_text(folder / "report.md", report + "\n")
    # Written last: its presence marks the run as finished.
    atomic_write_json(
        folder / "all_results.json", {**results, "history": history, "validation_samples": validation_samples}
    )
