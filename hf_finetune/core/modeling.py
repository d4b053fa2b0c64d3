"""Model and tokenizer loading (pad token set), what trains (`--trainable` policies), model facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from .errors import UserError

TRAINABLE_HELP = "'last_block', 'head', 'last_blocks:N' or 'all'"


def _load_failure(what: str, name: str, error: Exception, flag: str = "--model_name_or_path") -> UserError:
    local = Path(name).expanduser().exists()
    way_out = (
        f"the folder {name} is not a complete {what} (see `python -m hf_finetune.tiny --help` to write one)"
        if local
        else "without network access, pass a local folder, e.g. one written by `python -m hf_finetune.tiny`"
    )
    return UserError(
        f"{flag}: could not load the {what} '{name}' ({error.__class__.__name__}); {way_out}."
    )


def load_tokenizer(
    name: str, trust_remote_code: bool = False, padding_side: str = "right", flag: str = "--model_name_or_path"
):
    """Load a tokenizer and make sure it can pad (GPT-2 and friends have no pad token)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as error:  # OSError, HTTP errors, ValueError for unknown classes, ...
        raise _load_failure("tokenizer", name, error, flag) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(
                f"{flag}: the tokenizer of '{name}' has neither a pad nor an end-of-text token, "
                f"so batches cannot be padded; add a pad token to its tokenizer_config.json."
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_classifier(name: str, label_names: list[str], tokenizer, trust_remote_code: bool = False) -> PreTrainedModel:
    """A sequence classifier whose class is read at the last real (non-pad) token."""
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            name,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: index for index, label in enumerate(label_names)},
            trust_remote_code=trust_remote_code,
        )
    except Exception as error:
        raise _load_failure("model", name, error) from None
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_causal_lm(name: str, tokenizer, trust_remote_code: bool = False) -> PreTrainedModel:
    """A causal LM (keeps its LM head) whose config knows the tokenizer's pad token."""
    try:
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise _load_failure("model", name, error) from None
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


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


def is_sequence_classifier(model: nn.Module) -> bool:
    """A model (or the model inside a PEFT wrapper) with a class head instead of an LM head."""
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    return inner.__class__.__name__.endswith("ForSequenceClassification")


def position_limit(config) -> int | None:
    """The most positions the model has embeddings for; None without a fixed limit (Bloom's ALiBi)."""
    limits = [getattr(config, name, None) for name in ("n_positions", "max_position_embeddings", "seq_length")]
    known = [int(limit) for limit in limits if limit]
    return min(known) if known else None


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total), counting tied parameters once."""
    seen: dict[int, torch.nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return trainable, total
