"""Preference tuning with DPO after instruction tuning, as in the bonus section of chapter 7 of
"Build a Large Language Model (From Scratch)", on TRL's DPOTrainer; or, with --algorithm, KTO
(KTOTrainer: each answer judged alone), ORPO or SimPO / CPO (trl.experimental: no reference model).

The story: pairs (instruction, optional input, a chosen and a rejected answer) -> the instruction
method's Alpaca prompt and ids, each answer closed by end-of-text -> DPOTrainer: the model learns
to raise the chosen answer's likelihood and lower the rejected one's, both measured against the
reference model (the starting model: a frozen copy, or under LoRA the model with its adapters
off), with reward accuracy, margins and log-probabilities on validation at every evaluation ->
greedy answers to the test prompts before and after, scored against both answers -> run folder.
recipes/preference.py chooses the defaults. The other algorithms follow the same story with their own
trainer (kto.py, reference_free.py) and report the figures their trainer logs.
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

from .arguments import ALGORITHMS, ARGUMENTS, FLAG_ALGORITHMS, PreferenceArguments, trainer_config_from
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

# What each algorithm optimises, for the plan.
OPTIMISES = {
    "dpo": "the chosen answer made more likely than the rejected one, both measured against the reference",
    "kto": "each chosen answer made more likely and each rejected one less likely than the reference makes it, "
    "judged alone (each pair gives a desirable and an undesirable example)",
    "orpo": "the chosen answers' NLL plus the odds of the chosen answer over the rejected one",
    "simpo": "the chosen answer's mean per-token log-probability above the rejected one's by a margin",
    "cpo": "the chosen answer's log-probability above the rejected one's, plus the chosen answers' NLL",
}


class PreferenceMethod(Method):
    console_leaves_out = ("logps/", "logits/")  # the raw log-probabilities and logits behind the rewards

    def __init__(self, model_args, preference_args: PreferenceArguments, run_args, training_args, lora_args=None):
        super().__init__(model_args, run_args, training_args, lora_args, options=(preference_args,))
        self.args = preference_args
        # The description is what a checkpoint records of its run (RunIdentity): a checkpoint of one
        # algorithm is refused by a run of another. DPO's is the one it had before --algorithm.
        name, trainer, _ = ALGORITHMS.get(preference_args.algorithm, (preference_args.algorithm, "", False))
        if preference_args.algorithm == "dpo":
            trainer, name = f"{trainer}, {preference_args.loss_type} loss", ""
        self.trained_with = f"{trainer}, beta {preference_args.beta:g}"
        self.description = f"preference tuning ({name + ', ' if name else ''}{self.trained_with}), Alpaca prompt format"

    def check_arguments(self) -> None:
        given = self.run_args.given_flags or frozenset()
        self.args.check(given)
        if self.args.algorithm == "kto":
            self.check_kto(given)
        require_instruction_run(self.model_args.model_name_or_path)
        if self.training_args.train_sampling_strategy == "group_by_length":
            raise UserError(
                "--train_sampling_strategy group_by_length: a preference pair has two lengths (prompt + chosen, "
                "prompt + rejected), so TRL's trainer cannot group them; use random or sequential."
            )

    def check_kto(self, given: frozenset[str]) -> None:
        if self.training_args.per_device_train_batch_size < 2:
            raise UserError("--per_device_train_batch_size must be at least 2 with --algorithm kto: its KL estimate "
                            "pairs each prompt with another example's answer in the batch.")  # fmt: skip
        if "train_sampling_strategy" in given and self.training_args.train_sampling_strategy != "sequential":
            raise UserError("--train_sampling_strategy: --algorithm kto trains in one fixed order (sequential; the "
                            "examples are shuffled once with --seed), since its KL estimate pairs neighbours.")  # fmt: skip

    def config(self) -> dict:
        """config.yaml without the flags --algorithm does not read (the recipe's --loss_type of an ORPO run):
        they did nothing, and given again through --config they would be refused."""
        unread = {flag for flag, algorithms in FLAG_ALGORITHMS.items() if self.args.algorithm not in algorithms}
        return {key: value for key, value in super().config().items() if key not in unread}

    def required_training_arguments(self) -> dict[str, object]:
        # Evaluation needs the loss and TRL's reward figures; full-vocabulary logits would only cost memory.
        needs: dict[str, object] = {"prediction_loss_only": True}
        if self.args.algorithm == "kto":  # its KL pairs are fixed in the data's order (kto.py)
            needs["train_sampling_strategy"] = "sequential"
        return needs

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
            "algorithm": f"{self.args.name}: {OPTIMISES[self.args.algorithm]}",
            **self.kto_plan(),
            "reference": (f"the starting model: {self.reference_description()}" if self.args.uses_reference
                          else f"none ({self.args.name} needs no reference model)"),  # fmt: skip
            "judge": self.args.judge_url or "none (nothing is sent anywhere)",
        }

    def kto_plan(self) -> dict[str, str]:
        if self.args.algorithm != "kto":
            return {}
        pairs = self.data.sizes()["train"]
        return {"examples": f"KTO learns from answers judged alone: each train pair gives its chosen answer as a "
                            f"desirable and its rejected one as an undesirable example ({2 * pairs} examples), "
                            f"shuffled once with --seed and trained in that order"}  # fmt: skip

    def reference_description(self) -> str:
        """How the run keeps the reference, the starting model."""
        if not self.args.uses_reference:
            return "none"
        if self.lora_args.use_peft:
            return "the trained model with its LoRA adapters switched off"
        if self.args.precompute_ref_log_probs:
            return "it scores every pair once, before training (--precompute_ref_log_probs, the default)"
        return "a frozen copy, scoring every batch (--precompute_ref_log_probs false)"

    def build_trainer(self, model, tokenizer):
        args = trainer_config_from(self.training_args, self.args, self.max_length)
        data = (self.encoded["train"], self.encoded["validation"], tokenizer)
        if self.args.algorithm == "dpo":
            return build_preference_trainer(model, args, *data, callbacks=[EvaluateAtEpochEnd()])
        if self.args.algorithm == "kto":
            from .kto import KTOPreferenceTrainer

            return build_preference_trainer(model, args, *data, callbacks=[EvaluateAtEpochEnd()],
                                            trainer_class=KTOPreferenceTrainer)  # fmt: skip
        from .reference_free import build_reference_free_trainer

        return build_reference_free_trainer(self.args.algorithm, model, args, *data, callbacks=[EvaluateAtEpochEnd()])

    def before_training(self, trainer) -> None:
        self.initial = trainer.evaluate() if trainer.args.eval_strategy != "no" else {}
        self.entries = pair_entries(self.data.splits["test"])
        self.answers, self.seconds = {}, {}
        if trainer.is_world_process_zero():  # the starting model's answers: the "before" of the comparison
            self.answers["before"], self.seconds["before"] = greedy_answers(
                trainer.model, trainer.processing_class, self.entries, self.args
            )

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        pairs, algorithm = len(self.encoded["train"]), self.args.algorithm
        self.history = preference_history(trainer.state.log_history, pairs, algorithm)
        final = next((point for point in reversed(self.history) if point["step"] == trainer.state.global_step
                      and "eval_loss" in point), None)  # fmt: skip
        if final is None and trainer.args.eval_strategy != "no":  # no evaluation ran at the last step
            trainer.evaluate()
            self.history = preference_history(trainer.state.log_history, pairs, algorithm)
            final = self.history[-1]
        if self.initial:
            measured = {key: value for key, value in self.initial.items() if key.startswith("eval_")}
            self.history.insert(0, {"step": 0, "epoch": 0.0, "examples_seen": 0, **measured})
        return {
            **results,
            "algorithm": algorithm,
            "beta": self.args.beta,
            **self.algorithm_settings(),
            "reference": self.reference_description(),
            **validation_figures(self.initial, "before", algorithm),
            **validation_figures(final or {}, "after", algorithm),
            "requests_cut": self.cut,
            "sizes": self.data.sizes(),
        }

    def algorithm_settings(self) -> dict[str, object]:
        """The settings of --algorithm's own, for all_results.json and the report."""
        algorithm = self.args.algorithm
        if algorithm == "dpo":
            return {"loss_type": self.args.loss_types()}
        if algorithm == "kto":
            return {"desirable_weight": self.args.desirable_weight, "undesirable_weight": self.args.undesirable_weight}
        if algorithm == "orpo":
            return {}
        return {"cpo_alpha": self.args.alpha(), **({"simpo_gamma": self.args.simpo_gamma} if algorithm == "simpo" else {})}

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
            title=f"{self.model_args.model_name_or_path} preference-tuned ({self.args.name}) on {self.args.dataset}",
            report_examples=self.args.report_examples,
        )

    def headline(self, results: dict) -> dict[str, str]:
        lines = {"algorithm": f"{self.args.name} ({self.trained_with})"}
        if results["validation_reward_margin_after"] is not None:
            before, after = (
                {key: results[f"validation_{key}_{stage}"] for key in ("chosen_logp", "rejected_logp")} for stage in STAGES
            )
            logps = (f"log-probability of the chosen answers {before['chosen_logp']:.2f} -> {after['chosen_logp']:.2f}, "
                     f"of the rejected {before['rejected_logp']:.2f} -> {after['rejected_logp']:.2f}")  # fmt: skip
            margin = f"margin {results['validation_reward_margin_after']:.3f}"
            accuracy = results.get("validation_reward_accuracy_after")
            if accuracy is not None:
                lines["validation reward accuracy"] = f"{accuracy:.3f} ({margin}; {logps})"
            else:  # KTO: its answers are scored alone
                lines["validation reward margin"] = f"{results['validation_reward_margin_after']:.3f} ({logps})"
        lines["test answers closer to chosen"] = (
            f"{results['test_closer_to_chosen_before']:.0%} before {self.args.name}, "
            f"{results['test_closer_to_chosen_after']:.0%} after (ROUGE-L, {results['test_examples']} prompts)"
        )
        return lines

    def card(self, trainer, results: dict) -> str:
        return preference_card(self.model_args.model_name_or_path, self.data, results, results["trainable"], trainer.args)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, preference_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    return run(PreferenceMethod(model_args, preference_args, run_args, training_args, lora_args))


if __name__ == "__main__":
    run_cli(main)
