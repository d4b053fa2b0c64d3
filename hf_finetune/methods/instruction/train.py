"""Alpaca-style instruction fine-tuning, as in chapter 7 of "Build a Large Language Model (From
Scratch)".

The story: entries (instruction, optional input, output) -> the Alpaca prompt -> token ids and
labels (the response's end-of-text included, so the model learns to stop; the prompt masked
with --mask_prompt) -> Trainer with the LM head only where labels are, evaluated on validation
and a training sample, with a response to one fixed validation example at every evaluation ->
greedy answers to the whole test split -> ROUGE-L (and an optional judge) -> run folder.
recipes/instruction.py chooses the defaults.
"""

from __future__ import annotations

from pathlib import Path

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import describe_model_source, fitted_max_length, position_limit
from hf_finetune.core.model.trainers import TargetLossTrainer, train_and_eval_datasets
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.curves import history_from_log
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.text.instructions import load_instruction_data

from .arguments import ARGUMENTS, InstructionArguments
from .card import instruction_card
from .encoding import encode_instructions
from .generate import LogValidationResponse
from .report import answer_test_split, write_instruction_results


class InstructionMethod(Method):
    def __init__(self, model_args, data_args: InstructionArguments, run_args, training_args, lora_args=None):
        super().__init__(model_args, run_args, training_args, lora_args, options=(data_args,))
        self.data_args = data_args
        self.description = "instruction tuning, Alpaca prompt format, labels on " + (
            "the response only (--mask_prompt)" if data_args.mask_prompt else "prompt and response"
        ) + " + end-of-text"

    def check_arguments(self) -> None:
        self.data_args.check()
        if self.training_args.restore_callback_states_from_checkpoint:
            # Trainer would rebuild the validation sampler from its saved state without its tokenizer.
            raise UserError(
                "--restore_callback_states_from_checkpoint: the instruction method restores its validation "
                "samples from a checkpoint on its own; drop the flag."
            )

    def required_training_arguments(self) -> dict[str, object]:
        # Evaluation needs only the loss; keeping full-vocabulary logits is the classic out-of-memory.
        return {"prediction_loss_only": True}

    def load_data(self) -> None:
        args = self.data_args
        self.data = load_instruction_data(
            args.dataset, args.dataset_url, args.cache_dir, args.split, args.columns(), args.dedupe
        )

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def encode(self, tokenizer, model) -> None:
        args = self.data_args
        self.max_length, self.length_note = fitted_max_length(args.max_length, model)
        limit = position_limit(model.config)
        self.encoded, self.counts = encode_instructions(self.data.splits, tokenizer, self.max_length, args.mask_prompt,
                                                        limit is not None and self.max_length >= limit)  # fmt: skip
        self.tokens_per_epoch = sum(len(ids) for ids in self.encoded["train"]["input_ids"])

    def plan(self) -> dict[str, object]:
        touched = ", ".join(f"{split}: {c['truncated']} prompts cut, {c['dropped']} dropped" for split, c in self.counts.items())
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{k} {v}" for k, v in self.data.sizes().items()),
            "max length": f"{self.max_length} tokens{self.length_note} ({touched})",
            **({"base": source} if (source := describe_model_source(self.model_args.model_name_or_path)) else {}),
            "judge": self.data_args.judge_url or "none (nothing is sent anywhere)",
        }

    def build_trainer(self, model, tokenizer):
        validation_entry = self.data.splits["validation"][0]
        self.sampler = LogValidationResponse(validation_entry, tokenizer, self.data_args.sample_max_new_tokens)
        return TargetLossTrainer(
            model=model,
            args=self.training_args,
            **train_and_eval_datasets(self.encoded, self.data_args.train_eval_samples),
            processing_class=tokenizer,
            data_collator=padding_collator(tokenizer),
            callbacks=[EvaluateAtEpochEnd(), self.sampler],
        )

    def before_training(self, trainer) -> None:
        self.initial = trainer.evaluate() if self.training_args.eval_strategy != "no" else {}

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        examples = len(self.encoded["train"])
        self.history = history_from_log(trainer.state.log_history, examples)
        final = next((point for point in reversed(self.history) if point["step"] == trainer.state.global_step
                      and "eval_validation_loss" in point), None)  # fmt: skip
        if final is None:  # no evaluation ran at the last step
            final = trainer.evaluate() if self.training_args.eval_strategy != "no" else {}
            self.history = history_from_log(trainer.state.log_history, examples)
        if self.initial:
            losses = {key: value for key, value in self.initial.items() if key.endswith("_loss")}
            self.history.insert(0, {"step": 0, "epoch": 0.0, "examples_seen": 0, **losses})
        return {
            **results,
            "train_tokens_per_epoch": self.tokens_per_epoch,
            # Measured by evaluation on the training sample (--train_eval_samples); train_loss is Trainer's.
            "initial_train_sample_loss": self.initial.get("eval_train_loss"),
            "initial_validation_loss": self.initial.get("eval_validation_loss"),
            "final_train_sample_loss": final.get("eval_train_loss"),
            "final_validation_loss": final.get("eval_validation_loss"),
            "truncation": self.counts,
            "sizes": self.data.sizes(),
        }

    def evaluate_on_main_process(self, trainer, results: dict) -> dict:
        answered = answer_test_split(trainer.model, trainer.processing_class, self.data.splits["test"], self.data_args)
        self.responses = answered.pop("responses")
        return {**results, **answered}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        write_instruction_results(
            Path(self.training_args.output_dir),
            results,
            self.history,
            self.responses,
            self.sampler.samples,
            self.tokens_per_epoch,
            config=config,
            title=f"{self.model_args.model_name_or_path} instruction-tuned on {self.data_args.dataset}",
            report_examples=self.data_args.report_examples,
        )

    def headline(self, results: dict) -> dict[str, str]:
        lines = {"test ROUGE-L": f"{results['test_rougeL']:.4f} over {results['test_examples']} test responses"}
        if results.get("judge_mean_score") is not None:
            lines["judge score"] = f"{results['judge_mean_score']:.2f} / 100 ({results['judge_model']})"
        if results.get("final_validation_loss") is not None:
            before = results.get("initial_validation_loss")
            lines["validation loss"] = (f"{before:.4f} before training, " if before is not None else "") + (
                f"{results['final_validation_loss']:.4f} after")
        return lines

    def card(self, trainer, results: dict) -> str:
        return instruction_card(
            self.model_args.model_name_or_path, self.data, results, results["trainable"], self.data_args.mask_prompt,
            trainer.args,
        )


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, data_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    return run(InstructionMethod(model_args, data_args, run_args, training_args, lora_args))


if __name__ == "__main__":
    run_cli(main)
