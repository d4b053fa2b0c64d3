"""The Trainers every method builds on.

- `OrderedEvalTrainer`: predictions come back in dataset order (they match their texts) while
  evaluation runs its batches sorted by length (little padding: the texts of a classifier's split
  in file order pad to about twice their tokens in batches of 32); a length-grouped training order
  that depends only on (seed, epoch), so a resumed run sees the same batches; and evaluation bars
  that say what they run through.
- `TargetLossTrainer`: the LM head only where a label is. A small causal LM's head (hidden x
  vocabulary) is its most expensive matrix: about 31% of GPT-2's forward FLOPs per position,
  46% of Bloom-560m's (a 250880-word vocabulary). A plain Trainer computes logits at every
  position, then throws away those whose label is -100: padding, and the prompt or the human
  turns when they are masked. Here the model gets `logits_to_keep` as a boolean mask of the
  positions that predict a target (transformers 5: the head runs on those positions only), and
  the loss is the same cross-entropy the model would compute. The label-token, instruction and
  chat methods train through it.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler, SequentialSampler
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_finetune.core.data.collate import IGNORE_INDEX
from hf_finetune.core.data.splits import SPLIT_PREFIX
from hf_finetune.core.model.callbacks import LabelledProgressCallback
from hf_finetune.core.model.loading import is_sequence_classifier


def train_and_eval_datasets(encoded, sample_size: int, seed: int | None = None) -> dict:
    """Trainer's `train_dataset` and `eval_dataset`: the validation split, and a sample of
    `sample_size` training examples (shuffled with `seed`, else the first ones) whose curve beside
    validation's shows how well the model fits."""
    train = encoded["train"]
    sample = train.shuffle(seed=seed, keep_in_memory=True) if seed is not None else train
    sample = sample.select(range(min(sample_size, len(train))))
    return {"train_dataset": train, "eval_dataset": {"validation": encoded["validation"], "train": sample}}


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose order depends only on (seed, epoch), as accelerate's seedable
    sampler does for random batches, so a run resumed mid-epoch sees the same order."""

    def __init__(self, *args, seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class LengthSortedSampler(Sampler):
    """A dataset's indices from the shortest example to the longest (ties in dataset order)."""

    def __init__(self, dataset):
        self.order = np.argsort([len(ids) for ids in dataset["input_ids"]], kind="stable").tolist()

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)


def in_dataset_order(value, order: list[int]):
    """Predictions made in `order` (arrays, or tuples and lists of them), put back in dataset order."""
    if isinstance(value, (tuple, list)):
        return type(value)(in_dataset_order(item, order) for item in value)
    if isinstance(value, np.ndarray) and value.ndim > 0 and len(value) == len(order):
        restored = np.empty_like(value)
        restored[order] = value
        return restored
    return value


class OrderedEvalTrainer(Trainer):
    """A Trainer whose predictions keep dataset order even when training groups by length and
    evaluation sorts by it, so predictions can be matched back to their texts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if is_sequence_classifier(self.model):
            # Its forward takes **kwargs, so Trainer assumes its loss is already divided by the label
            # count of the whole accumulated batch on every process (num_items_in_batch); it is a
            # plain batch mean. Trainer would then sum gradient-accumulation steps instead of
            # averaging them, and multiply loss and gradients by the number of processes.
            self.model_accepts_loss_kwargs = False
        if self.callback_handler.pop_callback(ProgressCallback) is not None:  # not with --disable_tqdm
            self.progress = LabelledProgressCallback()
            self.add_callback(self.progress)
        else:
            self.progress = None

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):  # fmt: skip
        if self.progress is not None:
            self.progress.label = progress_label(description, metric_key_prefix)
        return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            sampler = EpochSeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)
        return sampler

    def _get_eval_sampler(self, eval_dataset):
        if eval_dataset is None or self.args.world_size > 1:
            return None  # distributed: accelerate shards batches in order and gathers them back in order
        if "input_ids" in getattr(eval_dataset, "column_names", ()):
            return LengthSortedSampler(eval_dataset)  # metrics do not depend on the order; predict() restores it
        return SequentialSampler(eval_dataset)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        output = super().predict(test_dataset, ignore_keys, metric_key_prefix)
        sampler = self._get_eval_sampler(test_dataset)
        if not isinstance(sampler, LengthSortedSampler):
            return output
        return output._replace(predictions=in_dataset_order(output.predictions, sampler.order),
                               label_ids=in_dataset_order(output.label_ids, sampler.order))  # fmt: skip


SPLIT_OF_PREFIX = {prefix: split for split, prefix in SPLIT_PREFIX.items()}


def progress_label(description: str, metric_key_prefix: str) -> str:
    """What an evaluation or prediction bar runs through: "evaluating validation" for Trainer's
    evaluation of the eval_dataset named validation, "predicting test" for the final figures."""
    if description == "Prediction":  # trainer.predict(split, metric_key_prefix=SPLIT_PREFIX[split])
        return f"predicting {SPLIT_OF_PREFIX.get(metric_key_prefix, metric_key_prefix)}"
    name = metric_key_prefix.removeprefix("eval").lstrip("_") or "validation"
    return "evaluating " + ("training sample" if name == "train" else name)


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, length) mask of the positions whose next token is a target (the causal shift)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def target_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens, and how many there are."""
    keep = target_positions(labels)
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets, reduction="sum"), int(targets.numel())


def supports_target_logits(model) -> bool:
    """Whether the model's forward takes `logits_to_keep` (a PEFT wrapper passes it on)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT also marks the inner model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


class TargetLossTrainer(OrderedEvalTrainer):
    """A Trainer whose loss needs LM-head logits only where labels are not -100.

    Used while training, and in evaluation when only the loss is wanted
    (`prediction_loss_only`); otherwise, or for a model without `logits_to_keep`, Trainer's own
    loss with full logits.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Trainer counts the targets of a batch (num_items_in_batch) after the causal shift only
        # when it recognises the model's loss as a causal-LM loss, which it does not for GPT-2 or
        # Bloom (transformers 5.23): it would count one extra target per row that starts with a
        # label, and every loss would come out a little too small. This loss does shift.
        self._loss_shifts_labels = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        wanted = model.training or self.args.prediction_loss_only
        if not wanted or "labels" not in inputs or not supports_target_logits(self.accelerator.unwrap_model(model)):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss_sum, count = target_loss(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            # As Trainer does for a model's own causal-LM loss: num_items_in_batch counts the target
            # tokens of the whole accumulated batch on every process, Trainer then skips its division
            # by the accumulation steps, and DDP averages the processes' gradients.
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = loss_sum / max(count, 1)
        return (loss, {"loss": loss}) if return_outputs else loss
