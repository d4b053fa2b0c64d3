"""The model card of a reward run."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import is_adapter, model_card, training_summary
from hf_finetune.methods.text.pairs import PreferenceData
from hf_finetune.methods.text.prompt import format_prompt

from .report import MARGINS_PLOT, RELIABILITY_PLOT, figures_table


def reward_card(start_model: str, data: PreferenceData, results: dict, what_trains: str, args: TrainingArguments) -> str:
    repo = args.hub_model_id
    usage = (
        "from transformers import pipeline\n"
        f"score = pipeline('text-classification', model={repo!r})\n"
        f"text = {format_prompt('Name the capital of France.')!r} + 'The capital of France is Paris.'\n"
        "print(score(text)[0]['score'])  # the reward: higher is better"
    )
    return model_card(
        title=f"{repo}: a reward model from {start_model} (Alpaca prompt format)",
        method=(
            "Reward model (hf_finetune, TRL's RewardTrainer): a sequence classifier with one score read at the last "
            "real token of prompt + answer, trained so that the chosen answer of each pair scores above the rejected "
            "one (loss -log sigmoid(score chosen - score rejected)). Prompts use the Alpaca format; each answer ends "
            "with an end-of-text token. " + training_summary(args, what_trains)
        ),
        base_model=start_model,
        data=[*data.notes, ", ".join(f"{split} {size}" for split, size in data.sizes().items())],
        metrics_table=f"{figures_table(results)}\n\nTraining took {results['train_runtime_seconds']:.1f} s.",
        plots=[f"{MARGINS_PLOT}.png", f"{RELIABILITY_PLOT}.png", "accuracy.png"],
        intended_use="Ranking answers to short instructions in the style its chosen answers share, as a reward for "
        "reinforcement learning (GRPO) or best-of-n sampling, and as a worked example of reward modelling.",
        limits=[
            "A small model trained on a small data set: its scores rank answers like those of its pairs, and can be "
            "fooled by answers unlike them (length, repetition, words it learnt to like).",
            "Scores are relative: compare answers to the same prompt; a score alone means nothing.",
            "Not for decisions about people.",
        ],
        pipeline_tag="text-classification",
        usage=usage,
        tags=["reward-model", *(["lora", "peft"] if is_adapter(args) else [])],
    )
