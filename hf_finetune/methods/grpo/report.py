"""Results of a GRPO run: the reward (mean and spread) and the KL to the start model over steps on
held-out prompts, greedy test answers before and after scored by the same rewards, and the report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import yaml

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.report.curves import history_from_log, plot_curves
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.text.prompt import format_prompt, format_request
from hf_finetune.methods.text.responses import generate_responses

ANSWERS_FILE = "grpo_answers.json"
STAGES = ("before", "after")
TRAINING_FIGURES = ("reward", "reward_std", "kl")  # what TRL logs of the training batches, kept as train_<name>


def grpo_history(log_history: list[dict], prompts_per_epoch: int) -> list[dict]:
    """One point per logged step: validation reward, its spread and KL (eval_*, sampled answers to the
    held-out prompts), the running loss, and the training batches' reward, spread and KL."""
    history = history_from_log(log_history, prompts_per_epoch)
    by_step = {point["step"]: point for point in history}
    for entry in log_history:
        if "loss" in entry and entry.get("step") in by_step:
            for name in TRAINING_FIGURES:
                if name in entry:
                    by_step[entry["step"]][f"train_{name}"] = entry[name]
    for point in history:
        point.pop("eval_num_tokens", None)  # this process's count, from 0 again after a resume
    return history


def entries_of(split) -> list[dict]:
    return [{"instruction": row["instruction"], "input": row["input"], "output": row["output"]} for row in split]


def greedy_answers(model, tokenizer, entries: list[dict], max_new_tokens: int, batch_size: int) -> tuple[list[str], float]:
    started = time.time()
    answers = generate_responses(model, tokenizer, entries, max_new_tokens, batch_size)
    return answers, round(time.time() - started, 2)


def score_answers(rewards: list, entries: list[dict], answers: list[str]) -> dict[str, list[float]]:
    """Each reward's score of each answer, by the reward's name."""
    prompts = [format_prompt(entry["instruction"], entry["input"]) for entry in entries]
    references = [entry["output"] for entry in entries]
    return {reward.__name__: [float(value) for value in reward(prompts, answers, reference=references)] for reward in rewards}


def test_figures(scores: dict[str, list[float]], stage: str) -> dict[str, float]:
    total = np.sum([values for values in scores.values()], axis=0)
    figures = {f"test_reward_{stage}": float(np.mean(total)), f"test_reward_std_{stage}": float(np.std(total))}
    for name, values in scores.items():
        figures[f"test_reward_{name}_{stage}"] = float(np.mean(values))
    return figures


def answer_rows(entries: list[dict], answers: dict[str, list[str]], scores: dict[str, dict]) -> list[dict]:
    rows = []
    for index, entry in enumerate(entries):
        row = dict(entry)
        for stage in STAGES:
            row[f"answer_{stage}"] = answers[stage][index]
            row[f"reward_{stage}"] = round(sum(values[index] for values in scores[stage].values()), 4)
        rows.append(row)
    return rows


def figures_table(results: dict) -> str:
    rows = [
        ["validation: mean reward (sampled)", results.get("validation_reward_before"), results.get("validation_reward_after")],
        ["validation: reward spread (std)", results.get("validation_reward_std_before"),
         results.get("validation_reward_std_after")],
        ["validation: KL to the start model", results.get("validation_kl_before"), results.get("validation_kl_after")],
        ["test: mean reward (greedy)", results["test_reward_before"], results["test_reward_after"]],
        *([f"test: {name}", results[f"test_reward_{name}_before"], results[f"test_reward_{name}_after"]]
          for name in results["reward_names"]),
    ]  # fmt: skip
    shown = [[label, *("-" if value is None else value for value in values)] for label, *values in rows]
    return markdown_table([f"{results['sizes']['validation']} validation, {results['sizes']['test']} test prompts",
                           "before GRPO", "after GRPO"], shown)  # fmt: skip


def write_grpo_results(folder: Path, results: dict, history: list[dict], rows: list[dict], config: dict, title: str,
                       report_examples: int) -> None:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(folder / ANSWERS_FILE, rows)
    prompts = results["sizes"]["train"]
    curves = {
        "reward": ({"train_reward": "Training batches", "eval_reward": "Validation (sampled)"}, "Mean reward"),
        "reward_std": ({"train_reward_std": "Training batches", "eval_reward_std": "Validation (sampled)"},
                       "Reward spread (std)"),
        "kl": ({"train_kl": "Training batches", "eval_kl": "Validation (sampled)"}, "KL to the start model"),
    }  # fmt: skip
    for stem, (series, label) in curves.items():
        plot_curves(history, series, label, folder / stem, prompts, top_label="Prompts seen")
    examples = "\n\n".join(_example(index, row) for index, row in enumerate(rows[:report_examples]))
    report = "\n\n".join([
        f"# {title}",
        f"GRPO (TRL's GRPOTrainer) on {prompts} prompts: {results['num_generations']} answers sampled per prompt "
        f"(temperature {results['temperature']:g}, at most {results['max_completion_length']} tokens), each scored by "
        f"{', '.join(results['reward_names'])} (added up); an answer's advantage is its reward against its group's; "
        f"KL weight beta {results['beta']:g} against the start model.",
        figures_table(results),
        "Validation figures are TRL's: sampled answers to the held-out prompts at every evaluation, KL per token "
        "to the start model (measured only with beta above 0). Test figures: one greedy answer per test prompt, "
        "scored by the same rewards.",
        f"Training took {results['train_runtime_seconds']:.1f} s.",
        "## Curves\n\n![reward](reward.png)\n\n![reward spread](reward_std.png)\n\n![KL](kl.png)",
        f"## Test prompts before and after GRPO\n\nAll of them: {ANSWERS_FILE}.\n\n{examples}",
        *([leakage_markdown(results["leakage"])] if "leakage" in results else []),
    ])  # fmt: skip
    atomic_write_text(folder / "report.md", report + "\n")
    atomic_write_json(folder / "all_results.json", {**results, "history": history})  # last: the run is finished


def _example(index: int, row: dict) -> str:
    return (f"### Test prompt {index + 1}\n\n```text\n{format_request(row['instruction'], row['input'])}\n```\n\n"
            f"**Reference**: {row['output']}\n\n**Before GRPO** (reward {row['reward_before']:g}): "
            f"{row['answer_before'] or '(empty)'}\n\n**After GRPO** (reward {row['reward_after']:g}): "
            f"{row['answer_after'] or '(empty)'}")  # fmt: skip
