"""The model card of a preference run (DPO, KTO, ORPO, SimPO or CPO)."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import GENERATOR_LIMITS, is_adapter, model_card, training_summary
from hf_finetune.methods.text.pairs import PreferenceData
from hf_finetune.methods.text.prompt import format_prompt

from .report import REWARDS, algorithm_of, figures_table, responses_table, trained_how

# What each algorithm does, in the card's words.
METHODS = {
    "dpo": "Direct preference optimisation",
    "kto": "Kahneman-Tversky optimisation",
    "orpo": "Odds-ratio preference optimisation",
    "simpo": "Simple preference optimisation",
    "cpo": "Contrastive preference optimisation",
}


def preference_card(start_model: str, data: PreferenceData, results: dict, what_trains: str, args: TrainingArguments) -> str:
    repo = args.hub_model_id
    usage = (
        "from transformers import pipeline\n"
        f"generate = pipeline('text-generation', model={repo!r})\n"
        f"prompt = {format_prompt('Name the capital of France.')!r}\n"
        "print(generate(prompt, max_new_tokens=64, do_sample=False, return_full_text=False)[0]['generated_text'])"
    )
    algorithm, name = algorithm_of(results)
    if algorithm == "dpo":
        what = (
            f"Direct preference optimisation (hf_finetune, TRL's DPOTrainer, {', '.join(results['loss_type'])} loss, "
            f"beta {results['beta']:g}): for each prompt, the model learns to make the chosen answer more likely and "
            f"the rejected one less likely than the reference model does (the starting model: {results['reference']}). "
        )
    else:
        what = f"{METHODS[algorithm]} (hf_finetune, {trained_how(results, data.sizes()['train'])}) {REWARDS[algorithm]} "
    return model_card(
        title=f"{repo}: {start_model} preference-tuned with {name} (Alpaca prompt format)",
        method=(
            what + "Prompts use the Alpaca format (### Instruction:, ### Input: when there is one, ### Response:); each "
            "answer ends with an end-of-text token. " + training_summary(args, what_trains)
        ),
        base_model=start_model,
        data=[*data.notes, ", ".join(f"{split} {size}" for split, size in data.sizes().items())],
        metrics_table=f"{figures_table(results)}\n\n{responses_table(results)}\n\n"
        f"Training took {results['train_runtime_seconds']:.1f} s.",
        plots=[*(["reward_accuracy.png"] if algorithm != "kto" else []), "reward_margin.png", "log_probs.png"],
        intended_use="Answering short instructions in the style its chosen answers share, and as a worked example "
        "of preference tuning. Use the prompt format above; generation stops at the end-of-text token.",
        limits=[*GENERATOR_LIMITS, f"{name} moves the style of answers toward the chosen ones; it adds no knowledge."],
        pipeline_tag="text-generation",
        usage=usage,
        tags=[algorithm, "preference-tuning", *(["lora", "peft"] if is_adapter(args) else [])],
    )
