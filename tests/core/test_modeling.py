"""Layer 4: freezing policies, last-real-token pooling, loading errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BloomConfig, GPT2Config

from hf_finetune.core.errors import UserError
from hf_finetune.core.modeling import (
    TrainablePolicy,
    apply_trainable_policy,
    count_parameters,
    load_classifier,
    load_tokenizer,
)


def gpt2_classifier(layers=3):
    config = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=layers, n_head=2, num_labels=2,
                        pad_token_id=0)
    return AutoModelForSequenceClassification.from_config(config)


def bloom_classifier(layers=3):
    config = BloomConfig(vocab_size=100, hidden_size=32, n_layer=layers, n_head=2, num_labels=2, pad_token_id=0)
    return AutoModelForSequenceClassification.from_config(config)


def trainable_prefixes(model) -> set[str]:
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    return {".".join(name.split(".")[:3]) if ".h." in name else name.rsplit(".", 1)[0] for name in names}


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("head", {"score"}),
        ("last_block", {"transformer.h.2", "transformer.ln_f", "score"}),
        ("last_blocks:2", {"transformer.h.1", "transformer.h.2", "transformer.ln_f", "score"}),
    ],
)
@pytest.mark.parametrize("build", [gpt2_classifier, bloom_classifier], ids=["gpt2", "bloom"])
def test_freezing_policy_trains_exactly_the_expected_parameters(build, policy, expected):
    model = build()
    apply_trainable_policy(model, TrainablePolicy.parse(policy))
    assert trainable_prefixes(model) == expected


def test_all_and_counts():
    model = gpt2_classifier()
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    trainable, total = count_parameters(model)
    block = sum(p.numel() for p in model.transformer.h[-1].parameters())
    norm = sum(p.numel() for p in model.transformer.ln_f.parameters())
    assert trainable == block + norm + model.score.weight.numel()
    apply_trainable_policy(model, TrainablePolicy.parse("all"))
    assert count_parameters(model) == (total, total)


@pytest.mark.parametrize("text", ["last", "last_blocks:0", "blocks:2", ""])
def test_unknown_policy_is_refused(text):
    with pytest.raises(UserError, match="--trainable"):
        TrainablePolicy.parse(text)


def test_too_many_blocks_is_refused():
    with pytest.raises(UserError, match="more than the 3 blocks"):
        apply_trainable_policy(gpt2_classifier(), TrainablePolicy.parse("last_blocks:4"))


@pytest.mark.parametrize("side", ["right", "left"])
def test_class_is_read_at_the_last_real_token_with_padding_on_either_side(tiny_gpt2, side):
    tokenizer = load_tokenizer(str(tiny_gpt2), padding_side=side)
    model = load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer).eval()
    texts = ["Free entry in 2 a weekly competition to win cup final tickets", "ok"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the short text must be padded"
    with torch.no_grad():
        batched = model(**batch).logits
        alone = torch.cat([model(**tokenizer([text], return_tensors="pt")).logits for text in texts])
    if side == "left":
        # GPT-2 uses absolute positions: left padding shifts them unless position_ids follow the mask.
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            batched = model(**batch, position_ids=positions).logits
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


def test_pad_token_is_set_from_end_of_text(gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"


def test_unreachable_model_is_one_sentence_with_a_way_out(gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    with pytest.raises(UserError, match=r"could not load the model 'nobody/no-such-model'.*hf_finetune.tiny"):
        load_classifier("nobody/no-such-model", ["a", "b"], tokenizer)


def test_incomplete_local_folder_is_named(tmp_path):
    with pytest.raises(UserError, match=r"could not load the tokenizer .* is not a complete tokenizer"):
        load_tokenizer(str(tmp_path))
