"""The model card of an instruction-tuning run."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import GENERATOR_LIMITS, is_adapter, model_card, training_summary
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.methods.text.instructions import InstructionData
from hf_finetune.methods.text.prompt import format_prompt


def instruction_card(base_model: str, data: InstructionData, results: dict, what_trains: str, mask_prompt: bool, args: TrainingArguments) -> str:
    repo = args.hub_model_id
    table = markdown_table(
        ["", "training sample loss", "validation loss"],
        [
            ["before training", results.get("initial_train_sample_loss"), results.get("initial_validation_loss")],
            ["after training", results.get("final_train_sample_loss"), results.get("final_validation_loss")],
        ],
    )
    scores = f"Test ROUGE-L F1 over {data.sizes()['test']} greedy responses: {results['test_rougeL']:.4f}."
    if results.get("judge_mean_score") is not None:
        scores += f" Judge {results['judge_model']}: mean {results['judge_mean_score']:.2f} / 100."
    usage = (
        "from transformers import pipeline\n"
        f"generate = pipeline('text-generation', model={repo!r})\n"
        f"prompt = {format_prompt('Name the capital of France.')!r}\n"
        "print(generate(prompt, max_new_tokens=64, do_sample=False, return_full_text=False)[0]['generated_text'])"
    )
    return model_card(
        title=f"{repo}: {base_model} instruction-tuned (Alpaca prompt format)",
        method=(
            "Instruction fine-tuning (hf_finetune): each entry becomes an Alpaca-style prompt (### Instruction:, "
            "### Input: when there is one, ### Response:) followed by the response and an end-of-text token; "
            + ("only the response carries loss (--mask_prompt). " if mask_prompt else "prompt and response carry loss. ")
            + training_summary(args, what_trains)
        ),
        base_model=base_model,
        data=[*data.notes, ", ".join(f"{split} {size}" for split, size in data.sizes().items())],
        metrics_table=f"{table}\n\n{scores} Training took {results['train_runtime_seconds']:.1f} s.",
        plots=["loss.png"],
        intended_use="Answering short instructions like those of its training data, and as a worked example of "
        "instruction fine-tuning. Use the prompt format above; generation stops at the end-of-text token.",
        limits=GENERATOR_LIMITS,
        pipeline_tag="text-generation",
        usage=usage,
        tags=["instruction-tuning", *(["lora", "peft"] if is_adapter(args) else [])],
    )
