"""The model card of a head-method run."""

from __future__ import annotations

from transformers import TrainingArguments

from hf_finetune.core.report.hub import is_adapter, model_card, training_summary
from hf_finetune.methods.classify.calibration import with_probability_limit
from hf_finetune.methods.classify.data import ClassificationData
from hf_finetune.methods.classify.report import CLASSIFIER_LIMITS, classification_data_lines, split_table


def head_card(base_model: str, data: ClassificationData, results: dict, what_trains: str, args: TrainingArguments) -> str:
    """The card of a head-method run."""
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
        limits=with_probability_limit(CLASSIFIER_LIMITS, results),
        pipeline_tag="text-classification",
        usage=usage,
        tags=["text-classification", *(["lora", "peft"] if is_adapter(args) else [])],
    )
