"""Results of a preference run: the reward curves on validation, greedy test responses before and
after training (DPO, KTO, ORPO, SimPO or CPO) scored against the chosen and the rejected answer, and the report."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from hf_finetune.core.data.leakage import leakage_markdown
from hf_finetune.core.report.command import command_markdown
from hf_finetune.core.report.curves import history_from_log, plot_curves
from hf_finetune.core.report.files import atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.text.judge import judge_responses
from hf_finetune.methods.text.prompt import format_request
from hf_finetune.methods.text.responses import generate_responses
from hf_finetune.methods.text.rouge import rouge_l

from .arguments import ALGORITHMS, PreferenceArguments

RESPONSES_FILE = "preference_responses.json"
# What TRL's DPOTrainer logs (as eval_<name> on validation) -> the key in all_results.json
# (validation_<key>_before/_after) and the report's words. figures_of: each algorithm's.
FIGURES = {
    "loss": ("loss", "loss"),
    "rewards/accuracies": ("reward_accuracy", "reward accuracy"),
    "rewards/margins": ("reward_margin", "reward margin"),
    "rewards/chosen": ("chosen_reward", "chosen reward"),
    "rewards/rejected": ("rejected_reward", "rejected reward"),
    "logps/chosen": ("chosen_logp", "chosen log-probability"),
    "logps/rejected": ("rejected_logp", "rejected log-probability"),
}
STAGES = ("before", "after")
NLL = {"nll_loss": ("nll", "NLL of the chosen answers")}
# What the other trainers log besides (KTO: no reward accuracy, its answers being scored alone).
ALGORITHM_FIGURES = {
    "dpo": FIGURES,
    "kto": {**{name: FIGURES[name] for name in FIGURES if name != "rewards/accuracies"},
            "kl": ("kl", "KL estimate to the reference")},  # fmt: skip
    "orpo": {**FIGURES, **NLL, "log_odds_ratio": ("log_odds_ratio", "log odds ratio")},
    "simpo": {**FIGURES, **NLL},
    "cpo": {**FIGURES, **NLL},
}
# What a reward is, per algorithm (TRL's definitions), for the report.
REWARDS = {
    "dpo": "A pair's reward is beta times how much more likely the model makes its answer than the reference "
    "does; the reward accuracy is the share of pairs whose chosen answer gets the higher reward.",
    "kto": "An answer's reward is beta times how much more likely the model makes it than the reference does; KTO "
    "scores the chosen and the rejected answers as separate examples (no reward accuracy), the margin is the mean "
    "chosen reward minus the mean rejected one, and the KL estimate (TRL's, from each prompt with another "
    "example's answer) is the point rewards are measured from.",
    "orpo": "ORPO has no reference model: an answer's reward is beta times the model's mean log-probability per "
    "token of it; the reward accuracy is the share of pairs whose chosen answer gets the higher reward. The "
    "log-probabilities are per token.",
    "simpo": "SimPO has no reference model: an answer's reward is beta times the model's mean log-probability per "
    "token of it; the reward accuracy is the share of pairs whose chosen answer gets the higher reward. The "
    "log-probabilities are per token.",
    "cpo": "CPO has no reference model: an answer's reward is beta times the model's log-probability of it; the "
    "reward accuracy is the share of pairs whose chosen answer gets the higher reward.",
}


def figures_of(algorithm: str) -> dict[str, tuple[str, str]]:
    return ALGORITHM_FIGURES[algorithm]


def preference_history(log_history: list[dict], pairs_per_epoch: int, algorithm: str = "dpo") -> list[dict]:
    """One point per logged step: the validation figures (eval_*), the running training loss, and the
    training batches' reward figures as train_<name>."""
    history = history_from_log(log_history, pairs_per_epoch)
    by_step = {point["step"]: point for point in history}
    for entry in log_history:
        if "loss" in entry and entry.get("step") in by_step:
            for name in figures_of(algorithm):
                if name != "loss" and name in entry:  # the training batches' figures
                    by_step[entry["step"]][f"train_{name}"] = entry[name]
    return history


def validation_figures(point: dict, stage: str, algorithm: str = "dpo") -> dict[str, float | None]:
    """The validation figures of one history point (or trainer.evaluate()'s result), as
    validation_<key>_<stage> (flat: --seeds and compare summarise top-level numbers)."""
    return {f"validation_{key}_{stage}": point.get(f"eval_{name}") for name, (key, _) in figures_of(algorithm).items()}


def algorithm_of(results: dict) -> tuple[str, str]:
    """The run's --algorithm and its name as written (a run from before --algorithm: DPO)."""
    algorithm = results.get("algorithm", "dpo")
    return algorithm, ALGORITHMS[algorithm][0]


def pair_entries(split) -> list[dict]:
    """The pairs of a split as dicts: instruction, input, chosen, rejected."""
    return [{name: row[name] for name in ("instruction", "input", "chosen", "rejected")} for row in split]


def greedy_answers(model, tokenizer, entries: list[dict], args: PreferenceArguments) -> tuple[list[str], float]:
    """Greedy responses to the test prompts, as the instruction method answers, and the seconds taken."""
    started = time.time()
    answers = generate_responses(model, tokenizer, entries, args.max_new_tokens, args.generation_batch_size)
    return answers, round(time.time() - started, 2)


def score_responses(
    entries: list[dict], answers: dict[str, list[str]], args: PreferenceArguments
) -> tuple[list[dict], dict]:
    """Rows of preference_responses.json (each prompt's answers before and after, with ROUGE-L against
    the chosen and the rejected answer, and the judge's score against the chosen one), and the means."""
    rows = [dict(entry) for entry in entries]
    chosen, rejected = [entry["chosen"] for entry in entries], [entry["rejected"] for entry in entries]
    # One call for every score: each stage's answers against the chosen, then the rejected answers.
    predictions = [answer for stage in STAGES for answer in answers[stage] * 2]
    scores, how = rouge_l(predictions, (chosen + rejected) * len(STAGES))
    summary: dict = {"test_examples": len(rows), "rouge_implementation": how}
    for number, stage in enumerate(STAGES):
        to_chosen = scores[2 * number * len(rows) :][: len(rows)]
        to_rejected = scores[(2 * number + 1) * len(rows) :][: len(rows)]
        for row, response, score_chosen, score_rejected in zip(rows, answers[stage], to_chosen, to_rejected):
            row[f"response_{stage}"] = response
            row[f"rougeL_chosen_{stage}"] = round(score_chosen, 4)
            row[f"rougeL_rejected_{stage}"] = round(score_rejected, 4)
        summary[f"test_rougeL_chosen_{stage}"] = sum(to_chosen) / len(rows)
        summary[f"test_rougeL_rejected_{stage}"] = sum(to_rejected) / len(rows)
        # A response is closer to the chosen answer when its ROUGE-L to it is strictly higher.
        summary[f"test_closer_to_chosen_{stage}"] = sum(c > r for c, r in zip(to_chosen, to_rejected)) / len(rows)
        if args.judge_url:
            judged = [{**entry, "output": entry["chosen"], "model_response": response}
                      for entry, response in zip(entries, answers[stage])]  # fmt: skip
            judge_scores, judge = judge_responses(args.judge_url, args.judge_model, judged)
            for row, score in zip(rows, judge_scores):
                row[f"judge_score_{stage}"] = score
            summary[f"judge_mean_score_{stage}"] = judge["judge_mean_score"]
            summary[f"judge_unparsed_{stage}"] = judge["judge_unparsed"]  # answers that held no score
            summary.update(judge_endpoint=judge["judge_endpoint"], judge_model=judge["judge_model"])
    return rows, summary


def figures_table(results: dict) -> str:
    def shown(value):
        return "-" if value is None else value  # no evaluation ran (--eval_strategy no)

    algorithm, name = algorithm_of(results)
    rows = [[label, *(shown(results.get(f"validation_{key}_{stage}")) for stage in STAGES)]
            for key, label in figures_of(algorithm).values()]  # fmt: skip
    return markdown_table(["validation", f"before {name}", f"after {name}"], rows)


def responses_table(results: dict) -> str:
    lines = [
        ["mean ROUGE-L to the chosen answer", "test_rougeL_chosen"],
        ["mean ROUGE-L to the rejected answer", "test_rougeL_rejected"],
        ["responses closer to the chosen answer", "test_closer_to_chosen"],
    ]
    if results.get("judge_endpoint"):
        lines.append([f"judge {results['judge_model']}: mean score against the chosen answer", "judge_mean_score"])
    rows = [[label, results.get(f"{key}_before"), results.get(f"{key}_after")] for label, key in lines]
    name = algorithm_of(results)[1]
    return markdown_table([f"{results['test_examples']} test prompts, greedy", f"before {name}", f"after {name}"], rows)


def write_preference_results(
    folder: Path, results: dict, history: list[dict], rows: list[dict], config: dict, title: str, report_examples: int
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(folder / RESPONSES_FILE, rows)
    pairs = results["sizes"]["train"]
    algorithm, name = algorithm_of(results)
    curves = {
        "loss": ({"train_loss": "Training (running)", "eval_loss": "Validation"}, f"{name} loss"),
        "reward_accuracy": (
            {"train_rewards/accuracies": "Training (running)", "eval_rewards/accuracies": "Validation"},
            "Reward accuracy",
        ),
        "reward_margin": (
            {"train_rewards/margins": "Training (running)", "eval_rewards/margins": "Validation"}, "Reward margin"
        ),
        "log_probs": (
            {"eval_logps/chosen": "Chosen (validation)", "eval_logps/rejected": "Rejected (validation)"},
            "Log-probability of the answer",
        ),
    }
    if "rewards/accuracies" not in figures_of(algorithm):
        del curves["reward_accuracy"]
    for stem, (series, label) in curves.items():
        bounds = (0, 1) if stem == "reward_accuracy" else None
        plot_curves(history, series, label, folder / stem, pairs, top_label="Pairs seen", bounds=bounds)
    examples = "\n\n".join(_example(index, row, results) for index, row in enumerate(rows[:report_examples]))
    report = "\n\n".join(
        [
            f"# {title}",
            *command_markdown(),
            trained_how(results, pairs),
            figures_table(results),
            REWARDS[algorithm],
            responses_table(results),
            f"Training took {results['train_runtime_seconds']:.1f} s. Test responses took "
            f"{results['test_generation_seconds_before']:.1f} s before and {results['test_generation_seconds_after']:.1f} s "
            f"after; ROUGE-L F1 (stemmed) computed with the {results['rouge_implementation']}.",
            "## Curves\n\n" + "\n\n".join(f"![{stem.replace('_', ' ')}]({stem}.png)" for stem in curves),
            f"## Test prompts before and after {name}\n\nAll of them: {RESPONSES_FILE}.\n\n{examples}",
            *([leakage_markdown(results["leakage"])] if "leakage" in results else []),
        ]
    )
    atomic_write_text(folder / "report.md", report + "\n")
    # Written last: its presence marks the run as finished.
    atomic_write_json(folder / "all_results.json", {**results, "history": history})


def trained_how(results: dict, pairs: int) -> str:
    """The report's sentence on what trained, and against what reference."""
    algorithm, name = algorithm_of(results)
    if algorithm == "dpo":
        how = f"DPO ({', '.join(results['loss_type'])} loss, beta {results['beta']:g})"
    elif algorithm == "kto":
        how = (f"KTO (beta {results['beta']:g}, desirable weight {results['desirable_weight']:g}, undesirable weight "
               f"{results['undesirable_weight']:g}; each pair gives a desirable and an undesirable example)")  # fmt: skip
    else:
        own = f", simpo_gamma {results['simpo_gamma']:g}" if algorithm == "simpo" else ""
        alpha = f", cpo_alpha {results['cpo_alpha']:g}" if "cpo_alpha" in results else ""
        how = f"{name} (beta {results['beta']:g}{alpha}{own})"
    if algorithm in ("dpo", "kto"):
        return f"{how} on {pairs} pairs; the reference model is the starting model: {results['reference']}."
    return f"{how} on {pairs} pairs; {name} needs no reference model."


def _example(index: int, row: dict, results: dict) -> str:
    name = algorithm_of(results)[1]

    def scored(stage: str) -> str:
        judge = f", judge {row[f'judge_score_{stage}']}" if f"judge_score_{stage}" in row else ""
        return (f"**{stage.capitalize()} {name}** (ROUGE-L to chosen {row[f'rougeL_chosen_{stage}']:.2f}, to rejected "
                f"{row[f'rougeL_rejected_{stage}']:.2f}{judge}): {row[f'response_{stage}'] or '(empty)'}")  # fmt: skip

    return (
        f"### Test prompt {index + 1}\n\n```text\n{format_request(row['instruction'], row['input'])}\n```\n\n"
        f"**Chosen**: {row['chosen']}\n\n**Rejected**: {row['rejected']}\n\n{scored('before')}\n\n{scored('after')}"
    )
