"""The label-token method end to end: data -> label words -> causal LM -> Trainer -> results.

Same run folder as the head method (all_results.json, history, plots, report.md, the model and
tokenizer), plus `label_token.json`: the label words, their token ids, the separator and the
text budget, which `hf_finetune.predict` needs to classify new texts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import TrainingArguments

from .arguments import DataArguments, ModelArguments, RunArguments, config_snapshot
from .cards import label_token_card
from .classification import load_classification_data, softmax, write_classification_results
from .encoding import context_length
from .errors import UserError
from .hub import defer_push_to_end, prepare_hub_push, push_run, repo_creation_reported
from .label_token import LabelTokenCollator, LabelWords, encode_label_token, resolve_label_words, text_budget
from .label_token_model import LabelTokenTrainer, format_adherence, label_token_metrics
from .label_token_predict import LABEL_TOKEN_FILE
from .lora import LoraArguments, apply_lora, describe_lora, save_trained_model
from .metrics import classification_metrics
from .modeling import TrainablePolicy, apply_causal_lm_policy, count_parameters, load_causal_lm, load_tokenizer
from .preparation import SPLIT_PREFIX, SPLITS
from .results import atomic_write_json, history_from_log, markdown_table
from .reliability import train_reliably
from .training import EvaluateAtEpochEnd, device_name, guard_output_dir, precision_name, prepare_training_args, print_plan

METHODS = ("label-token", "head")


@dataclass
class LabelTokenArguments:
    method: str = field(
        default="label-token",
        metadata={
            "help": "'label-token': the LM writes a label word after the text; 'head': a class head read at the "
            "last real token (the spam recipe's method)."
        },
    )
    label_words: str | None = field(
        default=None,
        metadata={"help": "Comma-separated word per class, in class order (default: the class names, e.g. neg,pos)."},
    )
    separator: str | None = field(
        default=None, metadata={"help": "Text between the text and the label word (default: the end-of-text token)."}
    )

    def __post_init__(self):
        if self.method not in METHODS:
            raise UserError(f"--method: '{self.method}' is not a method; use {' or '.join(METHODS)}.")


def save_label_words(folder: Path, label_words: LabelWords, label_names: list[str], max_length: int) -> None:
    atomic_write_json(
        folder / LABEL_TOKEN_FILE,
        {**label_words.to_dict(), "label_names": label_names, "max_length": max_length},
    )


def train_label_token(
    model_args: ModelArguments,
    data_args: DataArguments,
    method_args: LabelTokenArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
    lora_args: LoraArguments | None = None,
) -> dict:
    lora_args = lora_args or LoraArguments()
    guard_output_dir(training_args.output_dir, run_args.overwrite_output_dir)
    prepare_training_args(training_args)
    prepare_hub_push(training_args)
    # Before the Trainer exists: building the reference TrainingArguments resets accelerate's state.
    config = config_snapshot(model_args, data_args, method_args, training_args, lora_args)
    # The evaluation needs the class id and the prefix length, which are not model inputs.
    training_args.remove_unused_columns = False
    policy = TrainablePolicy.parse(model_args.trainable)
    data = load_classification_data(data_args, training_args)

    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    label_words = resolve_label_words(tokenizer, data.label_names, method_args.label_words, method_args.separator)
    model = load_causal_lm(model_args.model_name_or_path, tokenizer, model_args.trust_remote_code)
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        trainable_description = describe_lora(model)
    else:
        trainable_description = apply_causal_lm_policy(model, policy)
    model.config.use_cache = False
    trainable, total = count_parameters(model)
    if trainable == 0:
        raise UserError(f"--trainable: '{model_args.trainable}' leaves no parameter to train in this model.")

    max_length = data_args.max_length or context_length(tokenizer, model.config)
    with training_args.main_process_first(desc="tokenizing"):
        encoded, truncated = encode_label_token(data.splits, tokenizer, label_words, max_length)
    train_sample = encoded["train"].shuffle(seed=training_args.seed, keep_in_memory=True).select(
        range(min(data_args.train_eval_samples, len(encoded["train"])))
    )
    words = ", ".join(f"{name} -> {word!r} {ids}" for name, word, ids in zip(data.label_names, label_words.words, label_words.token_ids))

    print_plan(
        {
            "method": "label-token (text + separator + label word; loss and LM head on the label word only)",
            "model": f"{model_args.model_name_or_path} ({model.__class__.__name__})",
            "data": "; ".join(data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in data.sizes().items()),
            "label words": words,
            "separator": f"{label_words.separator!r} {label_words.separator_ids}",
            "max length": f"{max_length} tokens, text up to {text_budget(max_length, label_words)} "
            f"({truncated} texts truncated)",
            "trainable": f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%): {trainable_description}",
            "device": device_name(training_args),
            "precision": precision_name(training_args),
            "output": training_args.output_dir,
        },
        training_args,
    )

    with repo_creation_reported(training_args):
        trainer = LabelTokenTrainer(
            model=model,
            args=training_args,
            train_dataset=encoded["train"],
            eval_dataset={"validation": encoded["validation"], "train": train_sample},
            processing_class=tokenizer,
            data_collator=LabelTokenCollator(tokenizer.pad_token_id),
            compute_metrics=lambda prediction: label_token_metrics(prediction, label_words, data.label_names),
            callbacks=[EvaluateAtEpochEnd()],
            label_words=label_words,
            pad_token_id=tokenizer.pad_token_id,
        )
    defer_push_to_end(trainer)
    started = time.time()
    train_result = train_reliably(trainer, training_args, run_args.skip_nonfinite_batches)
    training_seconds = time.time() - started

    results: dict = {"train_runtime_seconds": round(training_seconds, 2), "train_loss": train_result.training_loss}
    probabilities: dict[str, np.ndarray] = {}
    for split in SPLITS:
        output = trainer.predict(encoded[split], metric_key_prefix=SPLIT_PREFIX[split])
        scores, best_next = output.predictions
        probabilities[split] = softmax(np.asarray(scores, dtype=np.float64))
        prefix = SPLIT_PREFIX[split]
        for key, value in classification_metrics(output.label_ids, probabilities[split].argmax(-1), data.label_names).items():
            results[f"{prefix}_{key}"] = value
        results[f"{prefix}_format_adherence"] = format_adherence(best_next, label_words)
        results[f"{prefix}_loss"] = output.metrics[f"{prefix}_loss"]
    save_trained_model(trainer, training_args.output_dir, model_args.model_name_or_path, lora_args)

    if trainer.is_world_process_zero():
        folder = Path(training_args.output_dir)
        save_label_words(folder, label_words, data.label_names, max_length)
        adherence = (
            "## Format adherence\n\nHow often the unconstrained next token after the separator is (the first "
            "token of) a label word; accuracy compares the label words' scores only.\n\n"
            + markdown_table(
                ["split", "format adherence"],
                [[split, results[f"{SPLIT_PREFIX[split]}_format_adherence"]] for split in SPLITS],
            )
        )
        write_classification_results(
            folder,
            results,
            history_from_log(trainer.state.log_history, len(encoded["train"])),
            data,
            probabilities["test"],
            len(encoded["train"]),
            config=config,
            title=f"{model_args.model_name_or_path} on {data_args.dataset}, label-token method "
            f"(label words: {', '.join(label_words.words)})",
            extra_sections=(adherence,),
        )
    if training_args.push_to_hub:
        card = label_token_card(model_args.model_name_or_path, data, results, label_words, trainable_description, training_args)
        push_run(trainer, card)
    return results
