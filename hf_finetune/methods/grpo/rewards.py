"""The rewards GRPO learns from: functions that need no model, named on the command line; the
user's own functions from a Python file; a trained reward model (a reward run folder).

Every reward is a callable `reward(prompts, completions, reference=..., **kwargs) -> list[float]`, as
TRL's GRPOTrainer calls it (the data's other columns come as keyword arguments: `reference` is
the entry's output). The built-in ones read the answer as the instruction method does (the text
before any new ### section) and give 1.0 or 0.0:

    exact             the answer is the reference, whitespace aside
    contains:WORD     the answer contains WORD (any case)
    avoids:WORD       the answer does not contain WORD (any case)
    length:MIN-MAX    the answer has MIN to MAX words
    ends:TEXT         the answer ends with TEXT (e.g. ends:. for a full stop)
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from pathlib import Path

import torch

from hf_finetune.core.errors import UserError
from hf_finetune.methods.text.prompt import extract_response

BUILT_IN = ("exact", "contains:WORD", "avoids:WORD", "length:MIN-MAX", "ends:TEXT")


def _words(text: str) -> list[str]:
    return text.split()


def built_in_reward(spec: str):
    """The reward function a --rewards name stands for, or None when it names no built-in one."""
    kind, _, value = spec.partition(":")
    if kind == "exact" and not value:
        def rule(answer: str, reference: str) -> bool:
            return " ".join(_words(answer)) == " ".join(_words(reference))
    elif kind in ("contains", "avoids") and value.strip():
        word = value.strip().lower()

        def rule(answer: str, reference: str) -> bool:
            return (word in answer.lower()) == (kind == "contains")
    elif kind == "length":
        low, dash, high = value.partition("-")
        if not (dash and low.strip().isdecimal() and high.strip().isdecimal() and int(low) <= int(high)):
            raise UserError(f"--rewards: '{spec}' needs a range of words, length:MIN-MAX, e.g. length:5-40.")
        low, high = int(low), int(high)

        def rule(answer: str, reference: str) -> bool:
            return low <= len(_words(answer)) <= high
    elif kind == "ends" and value:
        def rule(answer: str, reference: str) -> bool:
            return answer.rstrip().endswith(value)
    else:
        return None

    def reward(prompts, completions, reference=None, **kwargs) -> list[float]:
        references = reference or [""] * len(completions)
        return [float(rule(extract_response(text), ref)) for text, ref in zip(completions, references)]

    reward.__name__ = spec
    return reward


def user_functions(path: str) -> dict[str, object]:
    """The functions defined in the user's Python file (not those it imports), by name."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--reward_file: {path} does not exist.")
    spec = importlib.util.spec_from_file_location(f"hf_finetune_user_rewards_{abs(hash(str(file.resolve())))}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UserError(f"--reward_file: {path}, line {error.lineno}: {error.msg}.") from None
    except Exception as error:  # the user's code: whatever it raises on import
        raise UserError(f"--reward_file: {path} failed to load ({error.__class__.__name__}: {error}).") from None
    sys.modules.setdefault(spec.name, module)
    return {name: value for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")}  # fmt: skip


def checked(function, name: str):
    """The user's function, its result checked: one finite number per completion."""
    def reward(prompts, completions, **kwargs) -> list[float]:
        values = function(prompts, completions, **kwargs)
        try:
            values = [float(value) for value in values]
        except (TypeError, ValueError):
            raise UserError(f"--reward_file: {name} must return a list of numbers, one per completion.") from None
        if len(values) != len(completions):
            raise UserError(f"--reward_file: {name} returned {len(values)} values for {len(completions)} completions.")
        if not all(math.isfinite(value) for value in values):
            raise UserError(f"--reward_file: {name} returned a value that is not a finite number.")
        return values

    reward.__name__ = name
    return reward


def named_rewards(specs: list[str], reward_file: str | None) -> list:
    """The reward functions of --rewards, in order: built-in names first, then the file's functions."""
    functions = user_functions(reward_file) if reward_file else {}
    rewards = []
    for spec in specs:
        reward = built_in_reward(spec)
        if reward is None and spec in functions:
            reward = checked(functions[spec], spec)
        if reward is None:
            mine = f"; {reward_file} defines {', '.join(sorted(functions)) or 'no function'}" if reward_file else ""
            raise UserError(f"--rewards: '{spec}' is no reward; use {', '.join(BUILT_IN)}{mine}.")
        rewards.append(reward)
    return rewards


class RewardModelReward:
    """A reward run's model as a reward: the score of prompt + answer (the answer closed by end-of-text)."""

    __name__ = "reward_model"

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size

    @torch.no_grad()
    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        texts = [prompt + extract_response(completion) + self.tokenizer.eos_token
                 for prompt, completion in zip(prompts, completions)]  # fmt: skip
        device = next(self.model.parameters()).device
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], padding=True, return_tensors="pt",
                                   add_special_tokens=False).to(device)  # fmt: skip
            scores.extend(self.model(**batch).logits[:, 0].float().tolist())
        return scores


def load_reward_model(run: str, batch_size: int = 16) -> RewardModelReward:
    """The reward model of a reward run folder (hf-finetune reward), as a reward."""
    from transformers import AutoConfig

    from hf_finetune.core.model.loading import load_tokenizer
    from hf_finetune.core.model.saved_runs import architectures, load_sequence_classifier, require_saved_run

    try:
        folder = require_saved_run(run)
    except UserError as error:
        raise UserError(f"--reward_model: {error}") from None
    one_score = any(name.endswith("ForSequenceClassification") for name in architectures(folder)) and (
        AutoConfig.from_pretrained(folder).num_labels == 1
    )
    if not one_score:
        raise UserError(f"--reward_model: {run} is not a reward model (a classifier with one score); train one with "
                        "hf-finetune reward.")  # fmt: skip
    return RewardModelReward(load_sequence_classifier(folder), load_tokenizer(str(folder)), batch_size)
