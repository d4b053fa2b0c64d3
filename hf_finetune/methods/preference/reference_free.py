"""ORPO and CPO / SimPO (TRL's ORPOTrainer and CPOTrainer, from trl.experimental) on our encoded pairs.

Neither needs a reference model: ORPO adds to the chosen answers' NLL a term that raises the odds of
the chosen answer over the rejected one; CPO (and SimPO, its loss_type "simpo") scores each answer by
the policy's own log-probability (SimPO: per token, with a target margin). Both run the whole LM head
on every position (they read the full logits for their metrics), so DPO's answer-only head is not
applied to them.
"""

from __future__ import annotations

import os

import datasets

from hf_finetune.methods.text.pair_encoding import ENCODED


def trl_rows(pairs):
    """Our prompt_ids/chosen_ids/rejected_ids as the rows ORPO's and CPO's tokenize_row would have made:
    the prompt, and each answer after it with labels on the answer only (no BOS added: the instruction
    method's prompt has none; the answers end with end-of-text already)."""

    def row(pair):
        prompt = pair["prompt_ids"]
        out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for side in ("chosen", "rejected"):
            answer = pair[f"{side}_ids"]
            out[f"{side}_input_ids"] = prompt + answer
            out[f"{side}_attention_mask"] = [1] * (len(prompt) + len(answer))
            out[f"{side}_labels"] = [-100] * len(prompt) + answer
        return out

    return pairs.map(row, remove_columns=list(ENCODED), desc="TRL rows")


def already_tokenized(trainer_class: type) -> type:
    """`trainer_class` (ORPOTrainer, CPOTrainer) taking trl_rows' rows as they are."""

    class Trainer(trainer_class):
        def tokenize_row(self, feature, model=None) -> dict:
            return {}  # trl_rows made the row

    Trainer.__name__ = Trainer.__qualname__ = f"Preference{trainer_class.__name__}"
    return Trainer


def build_reference_free_trainer(algorithm: str, model, args, train_dataset, eval_dataset, tokenizer, callbacks):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental's import notice: nothing to act on
    if algorithm == "orpo":
        from trl.experimental.orpo import ORPOTrainer as trainer_class
    else:
        from trl.experimental.cpo import CPOTrainer as trainer_class
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()  # TRL's maps over rows it has nothing left to do for
    try:
        return already_tokenized(trainer_class)(
            model=model,
            args=args,
            train_dataset=trl_rows(train_dataset),
            eval_dataset=trl_rows(eval_dataset) if eval_dataset is not None else None,
            processing_class=tokenizer,
            callbacks=callbacks,
        )
    finally:
        if bars:
            datasets.utils.logging.enable_progress_bar()
