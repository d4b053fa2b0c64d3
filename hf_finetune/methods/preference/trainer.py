"""TRL's DPOTrainer on pairs this method has encoded, with the reference model TRL would use."""

from __future__ import annotations

import copy

from trl import DPOTrainer


class PreferenceTrainer(DPOTrainer):
    """DPOTrainer, given prompt_ids/chosen_ids/rejected_ids already (encoding.py): TRL would
    tokenize prompt and prompt + answer as one text each, and cut answers that are too long."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def build_preference_trainer(model, args, train_dataset, eval_dataset, tokenizer, callbacks) -> PreferenceTrainer:
    """The trainer, with the starting model as the reference, as TRL has it:

    - LoRA: the model with its adapters switched off (no copy);
    - --precompute_ref_log_probs: the model itself scores every pair before training (no copy kept);
    - otherwise a frozen copy of the model as it starts.
    """
    lora = hasattr(model, "peft_config")
    reference = None
    if not lora and not args.precompute_ref_log_probs:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    trainer = PreferenceTrainer(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    if lora and "ref" in model.peft_config:
        # TRL copies an adapter it is handed into a "ref" adapter, for adapters trained before; ours was
        # just created (zero update), so switching adapters off gives the same reference without the copy,
        # and the saved run holds one adapter.
        model.delete_adapter("ref")
    return trainer
