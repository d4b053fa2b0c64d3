"""The label-token method: text/label data -> label words -> causal LM -> Trainer -> results.

The LM keeps its head and learns to write the class's label word after `text + separator`; the
loss is on the label word's tokens only, and the LM head runs only there. Evaluation scores
every label word after each text (never full-vocabulary logits over the eval set), so accuracy
compares the label words, and format adherence says how often the unconstrained next token is
one. Same run folder as the head method, plus `label_token.json` (the label words, their token
ids, the separator and the text budget), which `hf_finetune.predict` needs.
"""

from __future__ import annotations

from pathlib import Path

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.data.splits import SPLIT_PREFIX, SPLITS
from hf_finetune.core.data.tokenize_cache import fitted_length
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.trainers import train_and_eval_datasets
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.files import atomic_write_json
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.classify.arguments import (
    LABEL_TOKEN_ARGUMENTS,
    CalibrationArguments,
    DataArguments,
    FinalSampleArguments,
    LabelTokenArguments,
)
from hf_finetune.methods.classify.calibration import (
    Calibration,
    calibration_headline,
    calibration_plan,
    check_calibration_data,
)
from hf_finetune.methods.classify.data import load_classification_data
from hf_finetune.methods.classify.final_sample import final_figure_splits, sample_note
from hf_finetune.methods.classify.report import classifier_headline, evaluate_splits, write_classification_results

from .card import label_token_card
from .encoding import encode_label_token
from .predict import LABEL_TOKEN_FILE, TEMPERATURE_KEY
from .scoring import LabelTokenTrainer, format_adherence, label_token_metrics, scored_sequences
from .words import resolve_label_words, text_budget

ARGUMENTS = LABEL_TOKEN_ARGUMENTS


class LabelTokenMethod(Method):
    console_leaves_out = ("precision", "recall")  # F1 sums them up
    description = "label-token (text + separator + label word; loss and LM head on the label word only)"

    def __init__(self, model_args, data_args: DataArguments, method_args: LabelTokenArguments, run_args,
                 training_args, lora_args=None, calibration_args: CalibrationArguments | None = None,
                 final_args: FinalSampleArguments | None = None):  # fmt: skip
        calibration_args, final_args = calibration_args or CalibrationArguments(), final_args or FinalSampleArguments()
        super().__init__(model_args, run_args, training_args, lora_args,
                         options=(data_args, method_args, calibration_args, final_args))  # fmt: skip
        self.data_args, self.method_args, self.calibration_args = data_args, method_args, calibration_args
        self.final_args = final_args

    def load_data(self) -> None:
        self.data = load_classification_data(self.data_args, self.training_args)
        check_calibration_data(self.calibration_args.calibrate, len(self.data.splits["validation"]))

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def split_labels(self) -> dict[str, list[str]]:
        return self.data.split_labels()

    def required_training_arguments(self) -> dict[str, object]:
        # The evaluation needs the class id and the prefix length, which are not model inputs.
        return {"remove_unused_columns": False}

    def tokenize(self, tokenizer) -> None:
        # The words must tokenize apart and not merge with the separator.
        self.label_words = resolve_label_words(
            tokenizer, self.data.label_names, self.method_args.label_words, self.method_args.separator
        )

    def encode(self, tokenizer, model) -> None:
        self.max_length, self.length_note = fitted_length(self.data_args.max_length, tokenizer, model.config)
        self.encoded, self.truncated = encode_label_token(self.data.splits, tokenizer, self.label_words, self.max_length)

    def frozen_cache_sequences(self) -> list[list[int]]:
        # Every training text as it trains; scored (with a label word appended) only the texts an evaluation
        # scores: validation, test, the training sample of each evaluation and the final figures' sample.
        seed = self.training_args.seed
        final, _ = final_figure_splits(self.encoded, self.final_args.final_train_sample, seed)
        sample = train_and_eval_datasets(self.encoded, self.data_args.train_eval_samples, seed)["eval_dataset"]["train"]
        scored = {"validation": self.encoded["validation"], "test": self.encoded["test"], "sample": sample,
                  "final": final["train"]}  # fmt: skip
        return list(self.encoded["train"]["input_ids"]) + scored_sequences(scored, self.label_words)

    def plan(self) -> dict[str, object]:
        words = self.label_words
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in self.data.sizes().items()),
            "label words": ", ".join(
                f"{name} -> {word!r} {ids}" for name, word, ids in zip(self.data.label_names, words.words, words.token_ids)
            ),
            "separator": f"{words.separator!r} {words.separator_ids}",
            "max length": f"{self.max_length} tokens{self.length_note}, text up to "
            f"{text_budget(self.max_length, words)} ({self.truncated} texts truncated)",
            **calibration_plan(self.calibration_args.calibrate, len(self.data.splits["validation"])),
        }

    def build_trainer(self, model, tokenizer):
        return LabelTokenTrainer(
            model=model,
            args=self.training_args,
            **train_and_eval_datasets(self.encoded, self.data_args.train_eval_samples, self.training_args.seed),
            processing_class=tokenizer,
            data_collator=padding_collator(tokenizer),
            compute_metrics=lambda prediction: label_token_metrics(prediction, self.label_words, self.data.label_names),
            callbacks=[EvaluateAtEpochEnd()],
            label_words=self.label_words,
            pad_token_id=tokenizer.pad_token_id,
        )

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        def class_scores(predictions):
            return predictions[0]

        splits, scored = final_figure_splits(self.encoded, self.final_args.final_train_sample, self.training_args.seed)
        metrics, _, outputs = evaluate_splits(trainer, splits, self.data.label_names, class_scores)
        self.calibration = Calibration.of_outputs(outputs, class_scores, self.calibration_args.calibrate)
        results = {**results, **metrics, **scored, **self.calibration.results()}
        for split, output in outputs.items():
            prefix = SPLIT_PREFIX[split]
            results[f"{prefix}_format_adherence"] = format_adherence(output.predictions[1], self.label_words)
            # train_loss is Trainer's mean loss while training, in every method: the training split's
            # loss measured now goes by another name.
            results["train_split_loss" if split == "train" else f"{prefix}_loss"] = output.metrics[f"{prefix}_loss"]
        return results

    def write_results(self, trainer, results: dict, config: dict) -> None:
        folder = Path(self.training_args.output_dir)
        atomic_write_json(
            folder / LABEL_TOKEN_FILE,
            {**self.label_words.to_dict(), "label_names": self.data.label_names, "max_length": self.max_length,
             TEMPERATURE_KEY: self.calibration.temperature or 1.0},  # predict divides the scores by it
        )  # fmt: skip
        adherence = (
            "## Format adherence\n\nHow often the unconstrained next token after the separator is (the first "
            "token of) a label word; accuracy compares the label words' scores only.\n\n"
            + markdown_table(
                ["split", "format adherence"],
                [[split, results[f"{SPLIT_PREFIX[split]}_format_adherence"]] for split in SPLITS],
            )
        )
        title = (f"{self.model_args.model_name_or_path} on {self.data_args.dataset}, label-token method "
                 f"(label words: {', '.join(self.label_words.words)})")  # fmt: skip
        calibration = self.calibration.write_section(folder, results)
        write_classification_results(folder, results, trainer.state.log_history, self.data,
                                     self.calibration.probabilities("test"), config, title,
                                     extra_sections=(adherence, calibration,
                                                     *sample_note(results, len(self.data.splits["train"]))))  # fmt: skip

    def headline(self, results: dict) -> dict[str, str]:
        return {**classifier_headline(results, self.data.label_names),
                "test format adherence": f"{results['test_format_adherence']:.4f}",
                **calibration_headline(results)}  # fmt: skip

    def card(self, trainer, results: dict) -> str:
        return label_token_card(
            self.model_args.model_name_or_path, self.data, results, self.label_words, results["trainable"], trainer.args
        )


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, method_args, run_args, training_args, lora_args, calibration_args, final_args = (
        parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    )
    return run(LabelTokenMethod(model_args, data_args, method_args, run_args, training_args, lora_args, calibration_args,
                                final_args))  # fmt: skip
