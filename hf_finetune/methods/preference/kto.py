"""KTO (TRL's KTOTrainer) on our encoded pairs: KTO learns from answers judged alone, each good
(desirable) or bad (undesirable), so each pair gives two examples: its prompt with the chosen answer
(desirable) and with the rejected one (undesirable).

TRL's KTO loss measures each answer's reward against an estimate of the KL divergence between the
model and the reference, which it takes from mismatched examples: in each batch, every prompt with
the answer of the example before it. That pairing is fixed in the data, so the examples are shuffled
once (with --seed) and trained in that order (train_sampling_strategy sequential).
"""

from __future__ import annotations

from trl import KTOTrainer

from .trainer import AnswersOnly


def unpaired(pairs, seed: int, batch_size: int, kl: bool):
    """prompt_ids, completion_ids, label (True: the chosen answer) per answer, shuffled with `seed`; with
    `kl`, each example's KL_completion_ids: the completion of the example before it in its batch."""

    def split(batch):
        prompts, completions, labels = [], [], []
        for prompt, chosen, rejected in zip(batch["prompt_ids"], batch["chosen_ids"], batch["rejected_ids"]):
            prompts += [prompt, prompt]
            completions += [chosen, rejected]
            labels += [True, False]
        return {"prompt_ids": prompts, "completion_ids": completions, "label": labels}

    examples = pairs.map(split, batched=True, remove_columns=pairs.column_names, desc="unpairing")
    examples = examples.shuffle(seed=seed).flatten_indices()
    if kl:

        def add_kl_completions(batch):  # TRL's rotation by one within the batch
            return {"KL_completion_ids": batch["completion_ids"][-1:] + batch["completion_ids"][:-1]}

        examples = examples.map(add_kl_completions, batched=True, batch_size=batch_size, desc="KL completions")
    return examples


class KTOPreferenceTrainer(AnswersOnly, KTOTrainer):
    """KTOTrainer, given our prompt_ids/chosen_ids/rejected_ids: unpaired here instead of TRL's tokenizing."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "completion_ids" in dataset.column_names:  # prepared already (evaluate() prepares again)
            return dataset
        batch_size = args.per_device_train_batch_size if dataset_name == "train" else args.per_device_eval_batch_size
        return unpaired(dataset, args.seed, batch_size, self.calculate_KL)
