"""Preference tuning with DPO after instruction tuning, as in the bonus section of chapter 7 of
"Build a Large Language Model (From Scratch)", on TRL's DPOTrainer.

The story: pairs (instruction, optional input, a chosen and a rejected answer) -> the instruction
method's Alpaca prompt and ids, each answer closed by end-of-text -> DPOTrainer: the model learns
to raise the chosen answer's likelihood and lower the rejected one's, both measured against the
reference model (the starting model: a frozen copy, or under LoRA the model with its adapters
off), with reward accuracy, margins and log-probabilities on validation at every evaluation ->
greedy answers to the test prompts before and after, scored against both answers -> run folder.
recipes/preference.py chooses the defaults.
"""

from __future__ import annotations

from pathlib import Path

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import describe_model_source, fitted_max_length
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.text import require_instruction_run
from hf_finetune.methods.text.pair_encoding import encode_pairs

from .arguments import ARGUMENTS, PreferenceArguments, dpo_config_from
from .card import preference_card
from .report import (
    STAGES,
    greedy_answers,
    pair_entries,
    preference_history,
    score_responses,
    validation_figures,
    write_preference_results,
)
from .trainer import build_preference_trainer


class PreferenceMethod(Method):
    def __init__(self, model_args, preference_args: PreferenceArguments, run_args, training_args, lora_args=None):
        super().__init__(model_args, run_args, training_args, lora_args, options=(preference_args,))
        self.args = preference_args
        self.description = (f"preference tuning (TRL DPOTrainer, {preference_args.loss_type} loss, beta "
                            f"{preference_args.beta:g}), Alpaca prompt format")  # fmt: skip

    def check_arguments(self) -> None:
        self.args.check()
        require_instruction_run(self.model_args.model_name_or_path)
        if self.training_args.train_sampling_strategy == "group_by_length":
            raise UserError(
                "--train_sampling_strategy group_by_length: a preference pair has two lengths (prompt + chosen, "
                "prompt + rejected), so TRL's trainer cannot group them; use random or sequential."
            )

    def required_training_arguments(self) -> dict[str, object]:
        # Evaluation needs the loss and TRL's reward figures; full-vocabulary logits would only cost memory.
        return {"prediction_loss_only": True}

    def load_data(self) -> None:
        self.data = self.args.load()

    def tokenize(self, tokenizer) -> None:
        # Encoded with --max_length before the model loads: a pair with no room for its answers costs
        # seconds; encode() fits the length to the model's positions.
        self.max_length = self.args.max_length
        self.encoded, self.cut = encode_pairs(self.data.splits, tokenizer, self.max_length,
                                              f"--max_length {self.max_length} tokens")  # fmt: skip

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def encode(self, tokenizer, model) -> None:
        self.max_length, self.length_note = fitted_max_length(self.args.max_length, model)
        if self.max_length != self.args.max_length:
            self.encoded, self.cut = encode_pairs(self.data.splits, tokenizer, self.max_length,
                                                  f"the model's {self.max_length} positions")  # fmt: skip

    def plan(self) -> dict[str, object]:
        cut = ", ".join(f"{split}: {count}" for split, count in self.cut.items())
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{name} {size} pairs" for name, size in self.data.sizes().items()),
            "max length": f"{self.max_length} tokens{self.length_note} (requests cut to fit: {cut})",
            **({"base": source} if (source := describe_model_source(self.model_args.model_name_or_path)) else {}),
            "reference": f"the starting model: {self.reference_description()}",
            "judge": self.args.judge_url or "none (nothing is sent anywhere)",
        }

    def reference_description(self) -> str:
        """How the run keeps the reference, the starting model."""
        if self.lora_args.use_peft:
            return "the trained model with its LoRA adapters switched off"
        if self.args.precompute_ref_log_probs:
            return "it scores every pair once, before training (--precompute_ref_log_probs, the default)"
        return "a frozen copy, scoring every batch (--precompute_ref_log_probs false)"

    def build_trainer(self, model, tokenizer):
        args = dpo_config_from(self.training_args, self.args, self.max_length)
        return build_preference_trainer(model, args, self.encoded["train"], self.encoded["validation"], tokenizer,
                                        callbacks=[EvaluateAtEpochEnd()])  # fmt: skip

    def before_training(self, trainer) -> None:
        self.initial = trainer.evaluate() if trainer.args.eval_strategy != "no" else {}
        self.entries = pair_entries(self.data.splits["test"])
        self.answers, self.seconds = {}, {}
        if trainer.is_world_process_zero():  # the starting model's answers: the "before" of the comparison
            self.answers["before"], self.seconds["before"] = greedy_answers(
                trainer.model, trainer.processing_class, self.entries, self.args
            )

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        pairs = len(self.encoded["train"])
        self.history = preference_history(trainer.state.log_history, pairs)
        final = next((point for point in reversed(self.history) if point["step"] == trainer.state.global_step
                      and "eval_loss" in point), None)  # fmt: skip
        if final is None and trainer.args.eval_strategy != "no":  # no evaluation ran at the last step
            trainer.evaluate()
            self.history = preference_history(trainer.state.log_history, pairs)
            final = self.history[-1]
        if self.initial:
            measured = {key: value for key, value in self.initial.items() if key.startswith("eval_")}
            self.history.insert(0, {"step": 0, "epoch": 0.0, "examples_seen": 0, **measured})
        return {
            **results,
            "beta": self.args.beta,
            "loss_type": self.args.loss_types(),
            "reference": self.reference_description(),
            **validation_figures(self.initial, "before"),
            **validation_figures(final or {}, "after"),
            "requests_cut": self.cut,
            "sizes": self.data.sizes(),
        }

    def evaluate_on_main_process(self, trainer, results: dict) -> dict:
        self.answers["after"], self.seconds["after"] = greedy_answers(
            trainer.model, trainer.processing_class, self.entries, self.args
        )
        self.scored, summary = score_responses(self.entries, self.answers, self.args)
        return {**results, **summary, **{f"test_generation_seconds_{stage}": self.seconds[stage] for stage in STAGES}}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        write_preference_results(
            Path(self.training_args.output_dir),
            results,
            self.history,
            self.scored,
            config=config,
            title=f"{self.model_args.model_name_or_path} preference-tuned (DPO) on {self.args.dataset}",
            report_examples=self.args.report_examples,
        )

    def headline(self, results: dict) -> dict[str, str]:
        lines = {}
        if results["validation_reward_accuracy_after"] is not None:
            before, after = (
                {key: results[f"validation_{key}_{stage}"] for key in ("chosen_logp", "rejected_logp")} for stage in STAGES
            )
            lines["validation reward accuracy"] = (
                f"{results['validation_reward_accuracy_after']:.3f} (margin {results['validation_reward_margin_after']:.3f}; "
                f"log-probability of the chosen answers {before['chosen_logp']:.2f} -> {after['chosen_logp']:.2f}, "
                f"of the rejected {before['rejected_logp']:.2f} -> {after['rejected_logp']:.2f})"
            )
        lines["test answers closer to chosen"] = (
            f"{results['test_closer_to_chosen_before']:.0%} before DPO, {results['test_closer_to_chosen_after']:.0%} "
            f"after (ROUGE-L, {results['test_examples']} prompts)"
        )
        return lines

    def card(self, trainer, results: dict) -> str:
        return preference_card(self.model_args.model_name_or_path, self.data, results, results["trainable"], trainer.args)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, preference_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    return run(PreferenceMethod(model_args, preference_args, run_args, training_args, lora_args))


if __name__ == "__main__":
    run_cli(main)
