"""The model card of a one-method chat run."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import GENERATOR_LIMITS, is_adapter, model_card, training_summary
from hf_finetune.core.report.markdown import markdown_table

LOSS_METHOD_DESCRIPTIONS = {
    "copy_labels": "copy-labels: labels are the input ids, so the model also learns the human text",
    "masked": "masked: human turns carry no loss (-100); each answer and the end-of-sequence closing it are learned",
    "completion_only": "TRL SFTTrainer with completion-only (or assistant-only) loss",
}


def chat_card(base_model: str, origin: str, row: dict, what_trains: str, args: TrainingArguments) -> str:
    """The card of a one-method chat run (`row` is its line of the comparison)."""
    repo = args.hub_model_id
    heldout = row.get("heldout")
    lines = [
        ["final training loss", row["final_train_loss"]],
        ["tokens carrying loss per epoch", f"{row['loss_tokens']} of {row['tokens']}"],
        ["training answers exact (greedy)", f"{row['training_exact']}/{row['training_asked']}"],
    ]
    if heldout:
        lines.append([f"held-out: {heldout['question']}", f"{heldout['answer']!r} (expected {heldout['expected']!r})"])
    usage = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"tokenizer = AutoTokenizer.from_pretrained({repo!r})  # its chat template writes the trained format\n"
        f"model = AutoModelForCausalLM.from_pretrained({repo!r})\n"
        "ids = tokenizer.apply_chat_template([{'role': 'user', 'content': 'How do you say \"day\" in Spanish?'}],\n"
        "                                    add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "output = model.generate(**ids, max_new_tokens=16, do_sample=False)\n"
        "print(tokenizer.decode(output[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))"
    )
    return model_card(
        title=f"{repo}: {base_model} fine-tuned on conversations ({row['method']})",
        method=f"Causal LM fine-tuning (hf_finetune), {LOSS_METHOD_DESCRIPTIONS[row['method']]}. " + training_summary(args, what_trains),
        base_model=base_model,
        data=[f"{origin}: {row['examples']} conversations"],
        metrics_table=markdown_table(["", "value"], lines) + f"\n\nTraining took {row['train_runtime_seconds']:.1f} s.",
        plots=["loss.png"],
        intended_use="Answering in the conversation format it was trained on (its tokenizer's chat template), "
        "and as a worked example of causal LM fine-tuning.",
        limits=[*GENERATOR_LIMITS, "Trained on very few conversations: it answers those, and generalises little."],
        pipeline_tag="text-generation",
        usage=usage,
        tags=["conversational", *(["lora", "peft"] if is_adapter(args) else [])],
    )
