"""The model card of a label-token run: the LM writes one label word after the text and separator."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import is_adapter, model_card, training_summary
from hf_finetune.methods.classify.calibration import with_probability_limit
from hf_finetune.methods.classify.data import ClassificationData
from hf_finetune.methods.classify.report import CLASSIFIER_LIMITS, classification_data_lines, split_table

from .words import LabelWords


def label_token_card(
    base_model: str, data: ClassificationData, results: dict, label_words: LabelWords, what_trains: str, args: TrainingArguments
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
        limits=[*with_probability_limit(CLASSIFIER_LIMITS, results),
                "Free generation may write other words: compare the label words' scores."],
        pipeline_tag="text-generation",
        usage=usage,
        tags=["text-classification", "label-token", *(["lora", "peft"] if is_adapter(args) else [])],
    )
