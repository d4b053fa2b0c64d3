"""The head method: a causal LM with a class head read at the last real (non-pad) token.

The story, as in chapter 6 of "Build a Large Language Model (From Scratch)": text/label data
-> `AutoModelForSequenceClassification` with a new head -> the `--trainable` policy (the last
block, final norm and head by default) -> token ids, padded per batch -> Trainer, evaluated on
validation and a training sample every `eval_steps` and at each epoch's end -> metrics per
split -> report and a model `pipeline("text-classification")` loads. recipes/spam.py chooses
the defaults.
"""

from __future__ import annotations

from pathlib import Path

from transformers import DataCollatorWithPadding

from hf_finetune.core.data.tokenize_cache import fitted_length
from hf_finetune.core.errors import run_cli
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import load_classifier
from hf_finetune.core.model.trainers import OrderedEvalTrainer, train_and_eval_datasets
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.classify.arguments import (
    HEAD_ARGUMENTS,
    CalibrationArguments,
    DataArguments,
    FinalSampleArguments,
)
from hf_finetune.methods.classify.calibration import (
    Calibration,
    calibration_headline,
    calibration_plan,
    check_calibration_data,
    fold_temperature,
    require_foldable_head,
)
from hf_finetune.methods.classify.data import load_classification_data
from hf_finetune.methods.classify.final_sample import final_figure_splits, sample_note
from hf_finetune.methods.classify.report import (
    classification_metrics,
    classifier_headline,
    evaluate_splits,
    write_classification_results,
)

from .card import head_card
from .encoding import encode_for_head

ARGUMENTS = HEAD_ARGUMENTS


class HeadMethod(Method):
    console_leaves_out = ("precision", "recall")  # F1 sums them up
    description = "head (class read at the last real token)"

    def __init__(self, model_args, data_args: DataArguments, run_args, training_args, lora_args=None,
                 calibration_args: CalibrationArguments | None = None,
                 final_args: FinalSampleArguments | None = None):  # fmt: skip
        calibration_args, final_args = calibration_args or CalibrationArguments(), final_args or FinalSampleArguments()
        super().__init__(model_args, run_args, training_args, lora_args,
                         options=(data_args, calibration_args, final_args))  # fmt: skip
        self.data_args, self.calibration_args, self.final_args = data_args, calibration_args, final_args

    def load_data(self) -> None:
        self.data = load_classification_data(self.data_args, self.training_args)
        check_calibration_data(self.calibration_args.calibrate, len(self.data.splits["validation"]))

    def load_model(self, tokenizer):
        model_args = self.model_args
        model = load_classifier(model_args.model_name_or_path, self.data.label_names, tokenizer, model_args.trust_remote_code)
        if self.calibration_args.calibrate:
            require_foldable_head(model, model_args.model_name_or_path)
        return model

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def split_labels(self) -> dict[str, list[str]]:
        return self.data.split_labels()

    def encode(self, tokenizer, model) -> None:
        self.max_length, self.length_note = fitted_length(self.data_args.max_length, tokenizer, model.config)
        self.encoded, self.truncated = encode_for_head(self.data.splits, tokenizer, self.max_length)

    def frozen_cache_sequences(self) -> list[list[int]]:
        return [ids for split in self.encoded.values() for ids in split["input_ids"]]

    def plan(self) -> dict[str, object]:
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in self.data.sizes().items()),
            "labels": ", ".join(f"{i}={name}" for i, name in self.data.id2label.items()),
            "max length": f"{self.max_length} tokens{self.length_note} ({self.truncated} texts truncated)",
            **calibration_plan(self.calibration_args.calibrate, len(self.data.splits["validation"])),
        }

    def build_trainer(self, model, tokenizer):
        def compute_metrics(prediction):
            metrics = classification_metrics(prediction.label_ids, prediction.predictions.argmax(-1), self.data.label_names)
            metrics.pop("confusion_matrix")
            return metrics

        return OrderedEvalTrainer(
            model=model,
            args=self.training_args,
            **train_and_eval_datasets(self.encoded, self.data_args.train_eval_samples, self.training_args.seed),
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
            callbacks=[EvaluateAtEpochEnd()],
        )

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        splits, scored = final_figure_splits(self.encoded, self.final_args.final_train_sample, self.training_args.seed)
        metrics, _, outputs = evaluate_splits(trainer, splits, self.data.label_names)
        self.calibration = Calibration.of_outputs(outputs, lambda logits: logits, self.calibration_args.calibrate)
        if self.calibration.temperature:  # before the save: the saved head gives logits / T
            fold_temperature(trainer.model, self.calibration.temperature)
        return {**results, **metrics, **scored, **self.calibration.results()}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        folder = Path(self.training_args.output_dir)
        calibration = self.calibration.write_section(folder, results, used_by="predict and pipeline() give")
        title = f"{self.model_args.model_name_or_path} on {self.data_args.dataset}, head method"
        write_classification_results(folder, results, trainer.state.log_history, self.data,
                                     self.calibration.probabilities("test"), config, title,
                                     extra_sections=(calibration, *sample_note(results, len(self.data.splits["train"]))))  # fmt: skip

    def headline(self, results: dict) -> dict[str, str]:
        return {**classifier_headline(results, self.data.label_names), **calibration_headline(results)}

    def card(self, trainer, results: dict) -> str:
        return head_card(self.model_args.model_name_or_path, self.data, results, results["trainable"], trainer.args)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, calibration_args, run_args, training_args, lora_args, final_args = parse_arguments(
        ARGUMENTS, argv, defaults, __doc__
    )
    return run(HeadMethod(model_args, data_args, run_args, training_args, lora_args, calibration_args, final_args))


if __name__ == "__main__":
    run_cli(main)
