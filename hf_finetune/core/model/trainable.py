"""What trains: the `--trainable` policies (the last block(s) with the final norm and head, the
head, or all), or LoRA adapters instead; the plan's account of it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import is_sequence_classifier
from hf_finetune.core.model.lora import LoraArguments, apply_lora, describe_lora

TRAINABLE_HELP = "'last_block', 'head', 'last_blocks:N' or 'all'"


def make_trainable(model: PreTrainedModel, policy: TrainablePolicy, lora_args: LoraArguments):
    """LoRA adapters, or the `--trainable` policy; returns the model to train and what trains.

    A class head follows the policy as it is; a causal LM keeps a tied LM head frozen under
    'last_block(s)' (see apply_causal_lm_policy)."""
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        what_trains = describe_lora(model)
    elif is_sequence_classifier(model):
        apply_trainable_policy(model, policy)
        what_trains = policy.describe()
    else:
        what_trains = apply_causal_lm_policy(model, policy)
    model.config.use_cache = False  # no generation while training; checkpointing needs it off
    if count_parameters(model)[0] == 0:
        raise UserError(f"--trainable: '{policy.text}' leaves no parameter to train in this model.")
    return model, what_trains


@dataclass(frozen=True)
class TrainablePolicy:
    kind: str  # "all", "head" or "last_blocks"
    blocks: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrainablePolicy":
        text = text.strip()
        if text in ("all", "head"):
            return cls(text)
        if text == "last_block":
            return cls("last_blocks", 1)
        match = re.fullmatch(r"last_blocks:(\d+)", text)
        if match and int(match.group(1)) >= 1:
            return cls("last_blocks", int(match.group(1)))
        raise UserError(f"--trainable: '{text}' is not a policy; use {TRAINABLE_HELP}.")

    @property
    def text(self) -> str:
        """The policy as --trainable spells it."""
        if self.kind != "last_blocks":
            return self.kind
        return "last_block" if self.blocks == 1 else f"last_blocks:{self.blocks}"

    def describe(self) -> str:
        if self.kind == "last_blocks":
            return f"last {self.blocks} block(s) + final norm + head"
        return {"all": "all parameters", "head": "head only"}[self.kind]


def transformer_blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of transformer blocks: the largest ModuleList inside the base model."""
    lists = [module for module in model.base_model.modules() if isinstance(module, nn.ModuleList)]
    if not lists:
        raise UserError(f"--trainable: cannot find the transformer blocks of {model.__class__.__name__}; use 'all'.")
    return max(lists, key=lambda module: sum(p.numel() for p in module.parameters()))


def final_norm(model: PreTrainedModel) -> nn.Module | None:
    """The norm applied after the last block: the base model's last direct child that is a norm."""
    norms = [child for child in model.base_model.children() if "norm" in child.__class__.__name__.lower()]
    return norms[-1] if norms else None


def head_parameters(model: PreTrainedModel) -> list[nn.Parameter]:
    """Parameters outside the base model (a classification head), or the LM head of a causal LM."""
    base = {id(p) for p in model.base_model.parameters()}
    outside = [p for p in model.parameters() if id(p) not in base]
    if outside:
        return outside
    output = model.get_output_embeddings()
    return list(output.parameters()) if output is not None else []


def apply_trainable_policy(model: PreTrainedModel, policy: TrainablePolicy) -> None:
    if policy.kind == "all":
        model.requires_grad_(True)
        return
    model.requires_grad_(False)
    for parameter in head_parameters(model):
        parameter.requires_grad_(True)
    if policy.kind == "last_blocks":
        blocks = transformer_blocks(model)
        if policy.blocks > len(blocks):
            raise UserError(f"--trainable: last_blocks:{policy.blocks} asks for more than the {len(blocks)} blocks.")
        for block in list(blocks)[-policy.blocks :]:
            block.requires_grad_(True)
        norm = final_norm(model)
        if norm is not None:
            norm.requires_grad_(True)


def head_is_tied(model: PreTrainedModel) -> bool:
    output, embeddings = model.get_output_embeddings(), model.get_input_embeddings()
    return output is not None and embeddings is not None and output.weight is embeddings.weight


def apply_causal_lm_policy(model: PreTrainedModel, policy: TrainablePolicy) -> str:
    """`--trainable` for a causal LM that keeps its LM head (label-token, instruction, chat);
    returns what trains, for the plan.

    'last_block'/'last_blocks:N': the blocks and the final norm, plus the LM head only when it
    has its own weights. A tied head (GPT-2) is the input embedding matrix: training it would
    train every input embedding too (38M of GPT-2's 124M parameters), so it stays frozen.
    'head' trains the LM head, tied or not; 'all' trains everything.
    """
    apply_trainable_policy(model, policy)
    if policy.kind != "last_blocks":
        return policy.describe()
    if head_is_tied(model):
        model.get_output_embeddings().requires_grad_(False)
        return f"last {policy.blocks} block(s) + final norm (the LM head is tied to the input embeddings: frozen)"
    return f"last {policy.blocks} block(s) + final norm + LM head"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total), counting tied parameters once."""
    seen: dict[int, torch.nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return trainable, total
