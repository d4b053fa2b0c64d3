"""The model card of a GRPO run."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import GENERATOR_LIMITS, is_adapter, model_card, training_summary
from hf_finetune.methods.text.instructions import InstructionData
from hf_finetune.methods.text.prompt import format_prompt

from .report import figures_table


def grpo_card(start_model: str, data: InstructionData, results: dict, what_trains: str, args: TrainingArguments) -> str:
    repo = args.hub_model_id
    usage = (
        "from transformers import pipeline\n"
        f"generate = pipeline('text-generation', model={repo!r})\n"
        f"prompt = {format_prompt('Name the capital of France.')!r}\n"
        "print(generate(prompt, max_new_tokens=64, do_sample=False, return_full_text=False)[0]['generated_text'])"
    )
    return model_card(
        title=f"{repo}: {start_model} trained with GRPO (Alpaca prompt format)",
        method=(
            f"GRPO (hf_finetune, TRL's GRPOTrainer): {results['num_generations']} answers sampled per prompt, scored "
            f"by {', '.join(results['reward_names'])}; each answer's advantage is its reward against its group's, "
            f"with a KL penalty (beta {results['beta']:g}) to the start model. " + training_summary(args, what_trains)
        ),
        base_model=start_model,
        data=[*data.notes, ", ".join(f"{split} {size}" for split, size in data.sizes().items())],
        metrics_table=f"{figures_table(results)}\n\nTraining took {results['train_runtime_seconds']:.1f} s.",
        plots=["reward.png", "kl.png"],
        intended_use="Answering short instructions in the way its rewards favour, and as a worked example of GRPO.",
        limits=[*GENERATOR_LIMITS, "GRPO optimises the rewards it was given: answers can game a rule that does not "
                "say what you meant."],  # fmt: skip
        pipeline_tag="text-generation",
        usage=usage,
        tags=["grpo", *(["lora", "peft"] if is_adapter(args) else [])],
    )
