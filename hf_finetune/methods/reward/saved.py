"""A finished reward run: told apart from other classifiers by its one output, and loaded with its
tokenizer to score answers."""

from __future__ import annotations

import json
from pathlib import Path

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer, position_limit
from hf_finetune.core.model.saved_runs import load_sequence_classifier

from .encoding import answer_sequences
from .scoring import sequence_scores

REWARD_LABEL = "reward"  # the classifier's one output


def is_reward_run(run_dir: Path) -> bool:
    """A saved sequence classifier whose one output is the reward (config.json: id2label {0: reward})."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("id2label") == {"0": REWARD_LABEL}


class RewardScorer:
    """The reward model of a run folder: the score of answers to one prompt, encoded as in training."""

    def __init__(self, run_dir: Path, batch_size: int = 16):
        self.model = load_sequence_classifier(run_dir).eval()
        self.tokenizer = load_tokenizer(str(run_dir))
        self.max_length = position_limit(self.model.config) or 1024
        self.batch_size = batch_size

    def __call__(self, instruction: str, answers: list[str], input: str = "") -> list[float]:
        try:
            sequences = answer_sequences(self.tokenizer, instruction, input, answers, self.max_length,
                                         f"the model's {self.max_length} positions")  # fmt: skip
        except UserError:
            raise UserError(
                f"an answer is too long for the model's {self.max_length} positions together with its prompt, even "
                "with the prompt cut; shorten it."
            ) from None
        return [float(score) for score in sequence_scores(self.model, self.tokenizer.pad_token_id, sequences, self.batch_size)]
