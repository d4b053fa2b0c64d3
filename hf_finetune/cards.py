"""The model card each method publishes with `--push_to_hub` (hub.model_card lays it out)."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainingArguments

from .hub import model_card
from .instruction_data import format_prompt
from .label_token import LabelWords
from .preparation import SPLIT_PREFIX
from .results import markdown_table

CLASSIFIER_LIMITS = [
    "Trained on one small data set; texts unlike it (other languages, domains, eras) get unreliable labels.",
    "The reported figures come from one seeded split; expect a few points of variation with another.",
    "Probabilities are not calibrated; do not use them as certainties, nor the labels as sole decisions about people.",
    "Inputs longer than the model's context are truncated.",
]
GENERATOR_LIMITS = [
    "A small model fine-tuned on a small data set: answers can be wrong, invented or off-topic; check them.",
    "Greedy decoding; it has no safety tuning and repeats the biases of its base model and data.",
    "Not for decisions about people, medical, legal or financial advice.",
]


def is_adapter(args: TrainingArguments) -> bool:
    return (Path(args.output_dir) / "adapter_config.json").is_file()


def training_summary(args: TrainingArguments, what_trains: str) -> str:
    length = f"{args.max_steps} steps" if args.max_steps > 0 else f"{args.num_train_epochs:g} epoch(s)"
    summary = (
        f"What trained: {what_trains}. {length}, AdamW lr {args.learning_rate:g}, weight decay {args.weight_decay:g}, "
        f"batch {args.per_device_train_batch_size} per device x {args.world_size} process(es), seed {args.seed}."
    )
    if is_adapter(args):
        summary += " The LoRA adapter is published; the base model is loaded separately (with `peft` installed)."
    return summary


def split_table(data, results: dict, extra: tuple[str, ...] = ()) -> str:
    """Examples and metrics per split; `extra` names further per-split results (e.g. format_adherence)."""
    keys = ("accuracy", "precision", "recall", "f1", *extra)
    return markdown_table(
        ["split", "examples", "accuracy", "precision", "recall", "F1", *(key.replace("_", " ") for key in extra)],
        [
            [split, len(data.splits[split])] + [results[f"{prefix}_{key}"] for key in keys]
            for split, prefix in SPLIT_PREFIX.items()
        ],
    )


def classification_data_lines(data) -> list[str]:
    return [
        *data.notes,
        ", ".join(f"{split} {size}" for split, size in data.sizes().items()),
        "labels: " + ", ".join(f"{index}={name}" for index, name in data.id2label.items()),
    ]


def classification_card(base_model: str, data, results: dict, what_trains: str, args: TrainingArguments) -> str:
    """The card of a head-method run (`data` is a preparation.ClassificationData)."""
    repo = args.hub_model_id
    usage = (
        "from peft import PeftModel\nfrom transformers import AutoConfig, AutoModelForSequenceClassification\n"
        f"config = AutoConfig.from_pretrained({repo!r})\n"
        f"base = AutoModelForSequenceClassification.from_pretrained({base_model!r}, config=config)\n"
        f"model = PeftModel.from_pretrained(base, {repo!r})"
        if is_adapter(args)
        else f"from transformers import pipeline\nclassify = pipeline('text-classification', model={repo!r})\n"
        "classify('WINNER!! Claim your prize now')"
    )
    return model_card(
        title=f"{repo}: {base_model} fine-tuned as a {len(data.label_names)}-class text classifier",
        method=(
            "Head method (hf_finetune): the causal LM's output layer is replaced by a "
            f"{len(data.label_names)}-class head read at the last real (non-pad) token. "
            + training_summary(args, what_trains)
        ),
        base_model=base_model,
        data=classification_data_lines(data),
        metrics_table=split_table(data, results)
        + f"\n\nPrecision, recall and F1 are for the class '{data.label_names[-1]}'. Training took "
        f"{results['train_runtime_seconds']:.1f} s.",
        plots=["loss.png", "accuracy.png"],
        intended_use=(
            f"Classifying short texts into {', '.join(data.label_names)}, like those of its training data, "
            "and as a worked example of fine-tuning a causal LM for classification."
        ),
        limits=CLASSIFIER_LIMITS,
        pipeline_tag="text-classification",
        usage=usage,
        tags=["text-classification", *(["lora", "peft"] if is_adapter(args) else [])],
    )


def label_token_card(
    base_model: str, data, results: dict, label_words: LabelWords, what_trains: str, args: TrainingArguments
) -> str:
    """The card of a label-token run: the LM writes one label word after the text and separator."""
    repo = args.hub_model_id
    first_tokens = [ids[0] for ids in label_words.token_ids]
    usage = (
        "import torch\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"tokenizer = AutoTokenizer.from_pretrained({repo!r})\n"
        f"model = AutoModelForCausalLM.from_pretrained({repo!r}).eval()\n"
        f"labels, first_tokens = {data.label_names!r}, {first_tokens!r}\n"
        f"ids = tokenizer('a text to classify')['input_ids'] + {label_words.separator_ids!r}  # text + separator\n"
        "with torch.no_grad():\n"
        "    scores = model(torch.tensor([ids])).logits[0, -1, first_tokens]\n"
        "print(labels[int(scores.argmax())])"
        + ("" if label_words.single_token else "  # first tokens only; hf_finetune.predict scores every token")
    )
    words = ", ".join(f"{name} -> {word!r}" for name, word in zip(data.label_names, label_words.words))
    return model_card(
        title=f"{repo}: {base_model} fine-tuned to write a label word ({', '.join(label_words.words)})",
        method=(
            "Label-token method (hf_finetune): the causal LM keeps its LM head and learns to write one label word "
            f"after the text and the separator {label_words.separator!r} ({words}). The loss is on the label word's "
            "tokens only (-100 everywhere else); a text's class is the label word with the highest score. "
            + training_summary(args, what_trains)
        ),
        base_model=base_model,
        data=classification_data_lines(data),
        metrics_table=split_table(data, results, extra=("format_adherence",))
        + f"\n\nPrecision, recall and F1 are for the class '{data.label_names[-1]}'. Format adherence: how often "
        "the unconstrained next token is (the first token of) a label word. Training took "
        f"{results['train_runtime_seconds']:.1f} s.",
        plots=["loss.png", "accuracy.png"],
        intended_use=(
            f"Classifying short texts into {', '.join(data.label_names)} by comparing the label words' scores, "
            "and as a worked example of the label-token method."
        ),
        limits=[*CLASSIFIER_LIMITS, "Free generation may write other words: compare the label words' scores."],
        pipeline_tag="text-generation",
        usage=usage,
        tags=["text-classification", "label-token", *(["lora", "peft"] if is_adapter(args) else [])],
    )


def instruction_card(base_model: str, data, results: dict, what_trains: str, mask_prompt: bool, args: TrainingArguments) -> str:
    """The card of an instruction-tuning run (`data` is an instruction_data.InstructionData)."""
    repo = args.hub_model_id
    table = markdown_table(
        ["", "training loss", "validation loss"],
        [
            ["before training", results.get("initial_train_loss"), results.get("initial_validation_loss")],
            ["after training", results.get("final_train_loss"), results.get("final_validation_loss")],
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


CHAT_METHODS = {
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
        method=f"Causal LM fine-tuning (hf_finetune), {CHAT_METHODS[row['method']]}. " + training_summary(args, what_trains),
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
