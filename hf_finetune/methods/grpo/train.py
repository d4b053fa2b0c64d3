"""GRPO (group relative policy optimisation, DeepSeekMath 2024) with TRL's GRPOTrainer: an
instruction-tuned model answers prompts from instruction data and learns from rewards.

The story: instruction data -> each entry's Alpaca prompt, its output kept as the reference ->
the start model (an instruction run folder) samples several answers per prompt -> every answer
scored by the rewards the user names (checkable rules, their own functions, a trained reward
model), added up -> each answer's advantage is its reward against the mean of its group; the
loss raises the likelihood of the better answers, with a KL penalty to the start model -> the
reward, its spread and the KL on held-out prompts at every evaluation -> greedy test answers
before and after, scored by the same rewards -> run folder. recipes/grpo.py chooses the defaults.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.callbacks import EvaluateAtEpochEnd
from hf_finetune.core.model.loading import describe_model_source
from hf_finetune.core.model.lora import drop_reference_copy
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.text import require_instruction_run
from hf_finetune.methods.text.instructions import load_instruction_data
from hf_finetune.methods.text.prompt import format_prompt

from .arguments import ARGUMENTS, GrpoArguments, grpo_config_from
from .report import (
    STAGES,
    answer_rows,
    entries_of,
    greedy_answers,
    grpo_history,
    score_answers,
    test_figures,
    write_grpo_results,
)
from .rewards import load_reward_model, named_rewards

VALIDATION = {"reward": "validation_reward", "reward_std": "validation_reward_std", "kl": "validation_kl"}


def prompt_rows(split) -> datasets.Dataset:
    """What GRPOTrainer reads: the Alpaca prompt, and the output as `reference` (its rewards get it)."""
    return datasets.Dataset.from_dict({
        "prompt": [format_prompt(row["instruction"], row["input"]) for row in split],
        "reference": list(split["output"]),
    })  # fmt: skip


class GrpoMethod(Method):
    # Sampling statistics, and each reward function's figures, which the mean reward sums up.
    console_leaves_out = ("num_tokens", "completions/", "clip_ratio/", "frac_reward_zero_std", "entropy", "rewards/")

    def __init__(self, model_args, grpo_args: GrpoArguments, run_args, training_args, lora_args=None):
        super().__init__(model_args, run_args, training_args, lora_args, options=(grpo_args,))
        self.args = grpo_args
        self.description = (f"GRPO (TRL GRPOTrainer: {grpo_args.num_generations} sampled answers per prompt, "
                            f"KL weight {grpo_args.beta:g}), Alpaca prompt format")  # fmt: skip

    def check_arguments(self) -> None:
        self.args.check(self.training_args)
        require_instruction_run(self.model_args.model_name_or_path)
        if self.training_args.train_sampling_strategy == "group_by_length":
            raise UserError("--train_sampling_strategy group_by_length: GRPO samples its answers as it trains, so "
                            "there are no lengths to group by; use random or sequential.")  # fmt: skip
        self.rewards = named_rewards(self.args.reward_specs(), self.args.reward_file)  # the user's file: loaded now
        if self.args.reward_model:
            self.rewards.append(load_reward_model(self.args.reward_model))

    def load_data(self) -> None:
        args = self.args
        self.data = load_instruction_data(args.dataset, args.dataset_url, args.cache_dir, args.split, args.columns(),
                                          args.dedupe)  # fmt: skip
        self.prompts = {name: prompt_rows(split) for name, split in self.data.splits.items()}

    def split_texts(self) -> dict[str, list[str]]:
        return self.data.split_texts()

    def encode(self, tokenizer, model) -> None:
        pass  # GRPOTrainer tokenizes the prompts as it samples

    def plan(self) -> dict[str, object]:
        return {
            "data": "; ".join(self.data.notes),
            "sizes": ", ".join(f"{name} {size} prompts" for name, size in self.data.sizes().items()),
            "rewards": ", ".join(reward.__name__ for reward in self.rewards) + " (added up)",
            "answers": f"{self.args.num_generations} per prompt, at most {self.args.max_completion_length} tokens, "
            f"temperature {self.args.temperature:g}",
            **({"base": source} if (source := describe_model_source(self.model_args.model_name_or_path)) else {}),
        }

    def build_trainer(self, model, tokenizer):
        from trl import GRPOTrainer

        for reward in self.rewards:
            if hasattr(reward, "model"):
                reward.model.to(self.training_args.device)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=list(self.rewards),
            args=grpo_config_from(self.training_args, self.args),
            train_dataset=self.prompts["train"],
            eval_dataset=self.prompts["validation"],
            processing_class=tokenizer,
            callbacks=[EvaluateAtEpochEnd()],
        )
        drop_reference_copy(model)
        return trainer

    def before_training(self, trainer) -> None:
        self.initial = trainer.evaluate() if trainer.args.eval_strategy != "no" else {}
        self.entries = entries_of(self.data.splits["test"])
        self.answers, self.seconds = {}, {}
        if trainer.is_world_process_zero():
            self.answers["before"], self.seconds["before"] = self.test_answers(trainer)

    def test_answers(self, trainer):
        return greedy_answers(trainer.model, trainer.processing_class, self.entries, self.args.max_completion_length,
                              self.args.generation_batch_size)  # fmt: skip

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        prompts = len(self.prompts["train"])
        self.history = grpo_history(trainer.state.log_history, prompts)
        final = next((point for point in reversed(self.history) if point["step"] == trainer.state.global_step
                      and "eval_reward" in point), None)  # fmt: skip
        if final is None and trainer.args.eval_strategy != "no":
            trainer.evaluate()
            self.history = grpo_history(trainer.state.log_history, prompts)
            final = self.history[-1]
        if self.initial:
            measured = {key: value for key, value in self.initial.items() if key.startswith("eval_")}
            self.history.insert(0, {"step": 0, "epoch": 0.0, "examples_seen": 0, **measured})
            self.history[0].pop("eval_num_tokens", None)
        validation = {f"{key}_{stage}": point.get(f"eval_{name}") for stage, point in (("before", self.initial),
                      ("after", final or {})) for name, key in VALIDATION.items()}  # fmt: skip
        return {
            **results,
            **validation,
            "reward_names": [reward.__name__ for reward in self.rewards],
            "num_generations": self.args.num_generations,
            "max_completion_length": self.args.max_completion_length,
            "temperature": self.args.temperature,
            "beta": self.args.beta,
            "sizes": self.data.sizes(),
        }

    def evaluate_on_main_process(self, trainer, results: dict) -> dict:
        self.answers["after"], self.seconds["after"] = self.test_answers(trainer)
        scores = {stage: score_answers(self.rewards, self.entries, self.answers[stage]) for stage in STAGES}
        self.rows = answer_rows(self.entries, self.answers, scores)
        figures = {key: value for stage in STAGES for key, value in test_figures(scores[stage], stage).items()}
        return {**results, **figures, **{f"test_generation_seconds_{stage}": self.seconds[stage] for stage in STAGES}}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        write_grpo_results(Path(self.training_args.output_dir), results, self.history, self.rows, config,
                           title=f"{self.model_args.model_name_or_path} trained with GRPO on {self.args.dataset}",
                           report_examples=self.args.report_examples)  # fmt: skip

    def headline(self, results: dict) -> dict[str, str]:
        lines = {"test mean reward": f"{results['test_reward_before']:.3f} before GRPO, {results['test_reward_after']:.3f} "
                 f"after (greedy, {results['sizes']['test']} prompts)"}  # fmt: skip
        if results.get("validation_reward_after") is not None:
            kl = results.get("validation_kl_after")
            lines["validation mean reward"] = (
                f"{results['validation_reward_before']:.3f} -> {results['validation_reward_after']:.3f} (sampled)"
                + (f", KL to the start model {kl:.4f}" if kl is not None else "")
            )
        return lines

    def card(self, trainer, results: dict) -> str:
        from .card import grpo_card

        return grpo_card(self.model_args.model_name_or_path, self.data, results, results["trainable"], trainer.args)


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    model_args, grpo_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    return run(GrpoMethod(model_args, grpo_args, run_args, training_args, lora_args))


if __name__ == "__main__":
    run_cli(main)
