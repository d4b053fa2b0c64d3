"""TRL's DPOTrainer on pairs this method has encoded, with the reference model TRL would use, and
the LM head only at the answers' tokens.

A DPO step is one forward and backward of the batch's chosen and rejected sequences together
(TRL concatenates them), plus the reference's log-probabilities of both answers: by default
computed once per pair before training (`--precompute_ref_log_probs`), so a step runs no
reference and no copy of the model stays in memory.

TRL's fused LM head scores the answer tokens only on devices with Triton (CUDA, XPU); elsewhere (CPU)
it projects every position, the prompt's and the padding's too, through the 768 x 50257 head (about
31% of GPT-2's forward FLOPs per position). `score_answers_only` gives the model the head
TargetLossTrainer uses there: `logits_to_keep` at the answer positions only, with the same outputs.
"""

from __future__ import annotations

import copy
import types

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.trainer import utils as trl_utils

from hf_finetune.core.model.lora import drop_reference_copy
from hf_finetune.core.model.trainers import supports_target_logits, target_positions


class AnswersOnly:
    """For a TRL trainer that scores answers as DPOTrainer does (`model(..., labels=..., fused_lm_head=True)`:
    DPOTrainer, KTOTrainer): the LM head at the answers' positions only, on the policy and the reference."""

    def __init__(self, *args, **kwargs):
        self.answers_only = False
        super().__init__(*args, **kwargs)
        self.score_answers_only()

    def score_answers_only(self) -> None:
        """Once TRL has added its fused head, and before anything scores a pair (TRL precomputes the
        reference's log-probabilities inside its __init__)."""
        if self.answers_only:
            return
        self.answers_only = True
        if getattr(trl_utils, "_use_triton", lambda device: False)(self.args.device):
            return  # TRL scores the answer tokens only already
        policy = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        for model in (policy, self.ref_model):
            if model is not None and supports_target_logits(model):
                score_answers_only(model)

    def _precompute_ref_logps(self, *args, **kwargs):
        self.score_answers_only()
        return super()._precompute_ref_logps(*args, **kwargs)


class PreferenceTrainer(AnswersOnly, DPOTrainer):
    """DPOTrainer, given prompt_ids/chosen_ids/rejected_ids already (encoding.py): TRL would
    tokenize prompt and prompt + answer as one text each, and cut answers that are too long."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def score_answers_only(model) -> None:
    """Make `model(..., labels=labels, fused_lm_head=True)` (the call TRL's DPOTrainer makes) run the LM
    head at the positions that predict a label only; every other call is TRL's patched forward."""
    patched = model.forward  # TRL's add_fused_lm_head wrapper around the model's own forward

    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        if not fused_lm_head or kwargs.get("shift_labels") is not None or kwargs.get("output_router_logits"):
            return patched(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)
        kwargs.pop("num_items_in_batch", None)
        keep = target_positions(labels)
        logits = patched(*args, logits_to_keep=keep, **{**kwargs, "use_cache": False}).logits
        return answer_scores(logits, labels)

    model.forward = types.MethodType(forward, model)


def answer_scores(logits: torch.Tensor, labels: torch.Tensor) -> trl_utils.FusedCausalLMOutput:
    """TRL's fused-head outputs from the logits at the target positions (`logits`: one row per label
    that is not -100, in order): per-token log-probability (with gradient), and without gradient the
    entropy, mean logit, whether the label is the top token and log(sum p^2) that its metrics read."""
    shifted = labels[:, 1:]
    mask = shifted != -100
    targets = shifted[mask]
    logits = logits.float()
    log_probs = -F.cross_entropy(logits, targets, reduction="none")
    with torch.no_grad():
        normalised = torch.log_softmax(logits, dim=-1)
        entropy = -(normalised.exp() * normalised).sum(-1)
        mean_logits = logits.mean(-1)
        is_top1 = logits.argmax(-1) == targets
        log_sum_sq_probs = torch.logsumexp(2 * normalised, dim=-1)

    def spread(values: torch.Tensor) -> torch.Tensor:  # zeros where the label is -100, as TRL's
        return values.new_zeros(mask.shape).masked_scatter(mask, values)

    log_probs = spread(log_probs)
    return trl_utils.FusedCausalLMOutput(
        loss=-log_probs.sum() / mask.sum().clamp(min=1),
        log_probs=log_probs,
        entropy=spread(entropy),
        log_sum_sq_probs=spread(log_sum_sq_probs),
        mean_logits=spread(mean_logits),
        is_top1=spread(is_top1),
        label_mask=mask,
    )


def build_preference_trainer(model, args, train_dataset, eval_dataset, tokenizer, callbacks,
                             trainer_class: type = PreferenceTrainer):  # fmt: skip
    """The trainer (DPO's, or `trainer_class`: KTO's), with the starting model as the reference, as TRL has it:

    - LoRA: the model with its adapters switched off (no copy);
    - --precompute_ref_log_probs (the default): the model itself scores every pair before training
      (no copy kept, no reference forward in a step);
    - otherwise a frozen copy of the model as it starts.
    """
    lora = hasattr(model, "peft_config")
    reference = None
    if not lora and not args.precompute_ref_log_probs:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    trainer = trainer_class(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    drop_reference_copy(model)
    return trainer
