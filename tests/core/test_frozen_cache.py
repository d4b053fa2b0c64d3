"""--cache_frozen: the cached forward gives the loss and gradients of the whole model (dropout off),
for GPT-2, Bloom (ALiBi) and Llama, right and left padding, a class head and an LM head; the plan
decides on and off as documented; the model is whole again after the cache detaches."""

from __future__ import annotations

import types

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BloomConfig,
    GPT2Config,
    LlamaConfig,
    TrainingArguments,
)

from hf_finetune.core.arguments import RunArguments
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.frozen_cache import FrozenPrefix, check_cache_arguments, plan_frozen_cache
from hf_finetune.core.model.trainable import TrainablePolicy, apply_causal_lm_policy, apply_trainable_policy
from hf_finetune.core.report.console import show_bars

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, PAD = 50, 0


def config(arch: str, layers: int = 3):
    common = dict(vocab_size=VOCAB, pad_token_id=PAD, num_labels=2)
    if arch == "gpt2":
        return GPT2Config(n_embd=32, n_layer=layers, n_head=2, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, **common)  # fmt: skip
    if arch == "bloom":
        return BloomConfig(hidden_size=32, n_layer=layers, n_head=2, hidden_dropout=0.0, attention_dropout=0.0, **common)
    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=64, **common)  # fmt: skip


def model_of(arch: str, head: str, policy: str = "last_block"):
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if head == "class" else AutoModelForCausalLM
    model = auto.from_config(config(arch))
    if head == "class":
        apply_trainable_policy(model, TrainablePolicy.parse(policy))
    else:
        apply_causal_lm_policy(model, TrainablePolicy.parse(policy))
    return model


def run_args(**flags) -> RunArguments:
    return RunArguments(**flags)


def training_args(tmp_path, **flags) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), report_to="none", **flags)


SEQUENCES = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15, 16, 17, 18], [19, 20, 21]]


def batch(side: str, sequences=SEQUENCES):
    width = max(map(len, sequences))
    input_ids = torch.full((len(sequences), width), PAD)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(sequences):
        where = slice(0, len(ids)) if side == "right" else slice(width - len(ids), width)
        input_ids[row, where] = torch.tensor(ids)
        mask[row, where] = 1
    return input_ids, mask


def loss_and_gradients(model, input_ids, mask, head: str):
    model.zero_grad()
    model.train()
    kwargs = {"input_ids": input_ids, "attention_mask": mask}
    # Positions counted from each text's first real token, as the cache computes them.
    kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if head == "class":
        loss = model(**kwargs, labels=torch.tensor([0, 1, 1, 0])).loss
    else:
        # Every real token but the first is a target (under left padding the first is predicted from a pad).
        first = mask.cumsum(-1) == 1
        labels = torch.where(mask.bool() & ~first, input_ids, -100)
        loss = model(**kwargs, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("head", ["class", "lm"])
@pytest.mark.parametrize("arch", ["gpt2", "bloom", "llama"])
def test_cached_loss_and_gradients_equal_the_whole_model(tmp_path, arch, head, side):
    model = model_of(arch, head)
    input_ids, mask = batch(side)
    expected_loss, expected_gradients = loss_and_gradients(model, input_ids, mask, head)
    decision = plan_frozen_cache(model, SEQUENCES, TrainablePolicy.parse("last_block"), False, run_args(),
                                 training_args(tmp_path))  # fmt: skip
    cache = decision.cache
    assert cache is not None, decision.line
    assert "blocks 1-2 of 3" in decision.line
    cache.build(model, torch.device("cpu"), autocast=_no_autocast, tokens_per_batch=3 * 8)
    cache.attach(model)
    try:
        loss, gradients = loss_and_gradients(model, input_ids, mask, head)
    finally:
        cache.detach()
    assert cache.served == 1
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-6)
    assert gradients.keys() == expected_gradients.keys() and gradients
    for name in gradients:
        torch.testing.assert_close(gradients[name], expected_gradients[name], rtol=1e-4, atol=1e-6, msg=name)
    assert len(cache.prefix.owner._modules[cache.prefix.attribute]) == 3  # the model is whole again


def _no_autocast():
    return torch.autocast("cpu", enabled=False)


def test_a_sequence_not_in_the_cache_runs_the_whole_model(tmp_path):
    model = model_of("gpt2", "class")
    cache = plan_frozen_cache(model, SEQUENCES[:2], TrainablePolicy.parse("last_block"), False, run_args(),
                              training_args(tmp_path)).cache  # fmt: skip
    cache.build(model, torch.device("cpu"), _no_autocast, tokens_per_batch=8 * 8)
    model.eval()
    input_ids, mask = batch("right")
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=mask).logits
        cache.attach(model)
        got = model(input_ids=input_ids, attention_mask=mask).logits
        cache.detach()
    assert cache.served == 0
    torch.testing.assert_close(got, expected)


def test_head_policy_starts_at_the_final_norm(tmp_path):
    model = model_of("gpt2", "class", "head")
    decision = plan_frozen_cache(model, SEQUENCES, TrainablePolicy.parse("head"), False, run_args(), training_args(tmp_path))
    assert decision.cache is not None and "blocks 1-3 of 3" in decision.line
    assert decision.cache.prefix.entry is model.transformer.ln_f


@pytest.mark.parametrize(
    ("policy", "lora", "flags", "reason"),
    [
        ("all", False, {}, "--trainable all"),
        ("last_block", True, {}, "LoRA"),
        ("last_block", False, {"cache_frozen": False}, "--cache_frozen false"),
        ("last_block", False, {"cache_frozen_max_gb": 1e-9}, "over the limit"),
    ],
)
def test_when_the_cache_stays_off(tmp_path, policy, lora, flags, reason):
    model = model_of("gpt2", "class", policy)
    decision = plan_frozen_cache(model, SEQUENCES, TrainablePolicy.parse(policy), lora, run_args(**flags),
                                 training_args(tmp_path))  # fmt: skip
    assert decision.cache is None
    assert decision.line.startswith("off") and reason in decision.line


def test_a_tied_lm_head_that_trains_keeps_it_off():
    model = model_of("gpt2", "lm", "head")  # GPT-2's LM head is the input embedding matrix
    assert "tied" in FrozenPrefix.find(model)


def test_the_memory_figure_is_the_cache_size(tmp_path):
    model = model_of("gpt2", "class")
    line = plan_frozen_cache(model, SEQUENCES + SEQUENCES, TrainablePolicy.parse("last_block"), False,
                             run_args(cache_frozen_dtype="bfloat16"), training_args(tmp_path)).line  # fmt: skip
    tokens = sum(map(len, SEQUENCES))  # repeated sequences are cached once
    assert f"{len(SEQUENCES)} sequences, {tokens} tokens, {tokens * 32 * 2 / 1024**2:.1f} MB bfloat16" in line


@pytest.mark.parametrize(
    ("flags", "words"),
    [({"cache_frozen_dtype": "fp8"}, "--cache_frozen_dtype: 'fp8'"), ({"cache_frozen_max_gb": 0.0}, "--cache_frozen_max_gb")],
)
def test_bad_cache_flags(flags, words):
    with pytest.raises(UserError, match=words):
        check_cache_arguments(types.SimpleNamespace(**{"cache_frozen_dtype": "auto", "cache_frozen_max_gb": None, **flags}))


def test_the_cache_build_shows_a_bar_that_leaves_no_trace(tmp_path, capsys):
    show_bars(True)  # as on a run's main process without --disable_tqdm
    model = model_of("gpt2", "lm")
    cache = plan_frozen_cache(model, SEQUENCES, TrainablePolicy.parse("last_block"), False, run_args(),
                              training_args(tmp_path)).cache  # fmt: skip
    cache.build(model, torch.device("cpu"), _no_autocast, tokens_per_batch=8)  # a batch per text
    err = capsys.readouterr().err
    assert "frozen cache:" in err and err.endswith("\r")
