"""Token ids of reward pairs, in the form TRL's RewardTrainer trains on: chosen_ids and rejected_ids,
each the whole sequence the model scores (the Alpaca prompt, then the answer, then end-of-text).

The pair is encoded as the preference method encodes it (methods/text/pair_encoding.py: the
instruction method's prompt ids, the answer closed by end-of-text, a request cut to fit, never an
answer), so a reward model scores exactly what a DPO or instruction run reads and writes.
"""

from __future__ import annotations

import datasets

from hf_finetune.methods.text.pair_encoding import encode_pair, encode_pairs

ANSWERS = ("chosen", "rejected")


def scored_sequence(prompt: list[int], answer: list[int]) -> list[int]:
    return prompt + answer


def encode_reward_pairs(
    splits: datasets.DatasetDict, tokenizer, max_length: int, limit: str
) -> tuple[datasets.DatasetDict, dict[str, int]]:
    """Every split as chosen_ids/rejected_ids (whole sequences), and per split how many requests were cut."""
    encoded, cut = encode_pairs(splits, tokenizer, max_length, limit)

    def join(batch):
        return {f"{answer}_ids": [scored_sequence(prompt, ids) for prompt, ids in zip(batch["prompt_ids"], batch[f"{answer}_ids"])]
                for answer in ANSWERS}  # fmt: skip

    return encoded.map(join, batched=True, remove_columns=["prompt_ids"], desc="joining prompts and answers"), cut


def answer_sequences(tokenizer, instruction: str, input: str, answers: list[str], max_length: int, limit: str) -> list[list[int]]:
    """The sequence the model scores for each answer to one prompt, encoded as in training."""
    sequences = []
    for answer in answers:
        entry = {"instruction": instruction, "input": input, "chosen": answer, "rejected": answer, "place": "the prompt"}
        ids, _ = encode_pair(tokenizer, entry, max_length, limit)
        sequences.append(scored_sequence(ids["prompt_ids"], ids["chosen_ids"]))
    return sequences
