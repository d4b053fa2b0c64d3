"""A reward model: a sequence classifier with one score, trained on preference pairs with TRL's
RewardTrainer.

The story: pairs (instruction, optional input, a chosen and a rejected answer) -> each answer
after the Alpaca prompt, closed by end-of-text, as the instruction and preference methods encode
it -> `AutoModelForSequenceClassification` with one output, read at the last real token -> the
RewardTrainer: the loss -log sigmoid(score chosen - score rejected) raises the chosen answer's
score above the rejected one's, with pairwise accuracy and margin on validation at every
evaluation -> every held-out pair scored before and after training: pairwise accuracy, the margin
distribution, the calibration of sigmoid(margin) -> a run folder that `hf-finetune score` and
`pipeline("text-classification")` read. recipes/reward.py chooses the defaults.
"""

from __future__ import annotations

from pathlib import Path

from hf_finetune.core.data.splits import SPLIT_PREFIX
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import fitted_max_length, load_classifier
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.text import require_instruction_run

from .arguments import ARGUMENTS, RewardArguments, reward_config_from
from .card import reward_card
from .encoding import encode_reward_pairs
from .report import HELD_OUT, STAGES, pair_figures, reward_history, scored_rows, write_reward_results
from .saved import REWARD_LABEL
from .scoring import pair_scores


class RewardMethod(Method):
    description = "reward model (TRL RewardTrainer: one score at the last real token, -log sigmoid(margin) loss)"

    def __init__(self, model_args, reward_args: RewardArguments, run_args, training_args, lora_args=None):
        super().__init__(model_args, run_args, training_args, lora_args, options=(reward_args,))
        self.args = reward_args

    def check_arguments(self) -> None:
        self.args.check()
        require_instruction_run(self.model_args.model_name_or_path, "model")
        if self.training_args.train_sampling_strategy == "group_by_length":
            raise UserError(
                "--train_sampling_strategy group_by_length: a reward pair has two lengths (prompt + chosen, "
                "prompt + rejected), so TRL's trainer cannot group them; use random or sequential."
            )

    def required_training_arguments(self) -> dict[str, object]:
        # Evaluation needs TRL's loss and figures; the held-out pairs are scored apart (evaluate_on_main_process).
        return {"prediction_loss_only": True}

    def load_data(self) -> None:
        self.data = self.args.load()

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def tokenize(self, tokenizer) -> None:
        self.max_length = self.args.max_length
        self.encoded, self.cut = encode_reward_pairs(self.data.splits, tokenizer, self.max_length,
                                                     f"--max_length {self.max_length} tokens")  # fmt: skip

    def load_model(self, tokenizer):
        model = load_classifier(self.model_args.model_name_or_path, [REWARD_LABEL], tokenizer,
                                self.model_args.trust_remote_code)  # fmt: skip
        # pipeline("text-classification") then gives the score itself, not sigmoid(score).
        model.config.problem_type = "regression"
        return model

    def encode(self, tokenizer, model) -> None:
        self.max_length, self.length_note = fitted_max_length(self.args.max_length, model)
        if self.max_length != self.args.max_length:
            self.encoded, self.cut = encode_reward_pairs(self.data.splits, tokenizer, self.max_length,
                                                         f"the model's {self.max_length} positions")  # fmt: skip

    def plan(self) -> dict[str, object]:
        cut = ", ".join(f"{split}: {count}" for split, count in self.cut.items())
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{name} {size} pairs" for name, size in self.data.sizes().items()),
            "max length": f"{self.max_length} tokens{self.length_note} (requests cut to fit: {cut})",
        }

    def build_trainer(self, model, tokenizer):
        from trl import RewardTrainer

        return RewardTrainer(
            model=model,
            args=reward_config_from(self.training_args, self.args, self.max_length),
            train_dataset=self.encoded["train"],
            eval_dataset=self.encoded["validation"],
            processing_class=tokenizer,
            callbacks=[EvaluateAtEpochEnd()],
        )

    def held_out_scores(self, trainer) -> dict:
        pad = trainer.processing_class.pad_token_id
        return {split: pair_scores(trainer.model, pad, self.encoded[split], self.args.scoring_batch_size)
                for split in HELD_OUT}  # fmt: skip

    def before_training(self, trainer) -> None:
        self.scores = {}
        if trainer.is_world_process_zero():  # the untrained head's ranking: the "before" of the comparison
            self.scores["before"] = self.held_out_scores(trainer)

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        pairs = len(self.encoded["train"])
        if trainer.args.eval_strategy != "no" and not any(
            entry.get("step") == trainer.state.global_step and "eval_loss" in entry for entry in trainer.state.log_history
        ):  # no evaluation ran at the last step: the validation curve ends where training does
            trainer.evaluate()
        self.history = reward_history(trainer.state.log_history, pairs)
        return {
            **results,
            "center_rewards_coefficient": self.args.center_rewards_coefficient,
            "requests_cut": self.cut,
            "sizes": self.data.sizes(),
        }

    def evaluate_on_main_process(self, trainer, results: dict) -> dict:
        self.scores["after"] = self.held_out_scores(trainer)
        figures = {}
        for stage in STAGES:
            for split in HELD_OUT:
                figures.update(pair_figures(*self.scores[stage][split], split, stage))
        test = self.data.splits["test"]
        self.rows = scored_rows(list(test), {stage: self.scores[stage]["test"] for stage in STAGES})
        return {**results, **figures}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        write_reward_results(
            Path(self.training_args.output_dir),
            results,
            self.history,
            self.rows,
            config=config,
            title=f"A reward model from {self.model_args.model_name_or_path} on {self.args.dataset}",
            report_examples=self.args.report_examples,
        )

    def headline(self, results: dict) -> dict[str, str]:
        prefix = SPLIT_PREFIX["test"]
        return {
            "test pairwise accuracy": (
                f"{results[f'{prefix}_pairwise_accuracy_after']:.3f} (before training "
                f"{results[f'{prefix}_pairwise_accuracy_before']:.3f}; median margin "
                f"{results[f'{prefix}_margin_median_after']:.3f}, ECE of sigmoid(margin) "
                f"{results[f'{prefix}_pairwise_ece_after']:.3f})"
            )
        }

    def card(self, trainer, results: dict) -> str:
        return reward_card(self.model_args.model_name_or_path, self.data, results, results["trainable"], trainer.args)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, reward_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    return run(RewardMethod(model_args, reward_args, run_args, training_args, lora_args))


if __name__ == "__main__":
    run_cli(main)
