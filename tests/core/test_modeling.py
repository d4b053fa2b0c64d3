"""Layer 4: freezing policies, last-real-token pooling, loading errors."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BloomConfig, GPT2Config

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import (
    describe_model_source,
    fitted_max_length,
    load_causal_lm,
    load_classifier,
    load_tokenizer,
)
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy, count_parameters


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


def test_a_model_folder_without_tokenizer_files_is_refused_at_load(tiny_gpt2, tmp_path):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_gpt2 / name, tmp_path / name)
    # transformers builds an empty GPT-2 tokenizer from config.json alone: every text becomes no ids.
    with pytest.raises(UserError, match=rf"^--model_name_or_path: {tmp_path} has no usable tokenizer .*copy the tokenizer files"):
        load_tokenizer(str(tmp_path))


@pytest.fixture
def adapter_run(tiny_gpt2, tmp_path):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2), LoraConfig(task_type=TaskType.CAUSAL_LM, r=4))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)  # a trained adapter changes the outputs
    model.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny_gpt2).save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter", model.eval()


def test_an_adapter_only_run_loads_as_its_base_with_the_adapter_merged(tiny_gpt2, adapter_run):
    folder, adapted = adapter_run
    tokenizer = load_tokenizer(str(folder))
    model = load_causal_lm(str(folder), tokenizer).eval()
    assert not hasattr(model, "peft_config"), "a plain model, which --trainable or a new LoRA can train"
    batch = tokenizer(["The capital of France is"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, adapted(**batch).logits, atol=1e-4, rtol=1e-4)
        base = load_causal_lm(str(tiny_gpt2), tokenizer).eval()(**batch).logits
    assert not torch.allclose(base, model(**batch).logits, atol=1e-3), "the adapter must count"
    assert describe_model_source(str(folder)).startswith(f"LoRA adapter run: base {tiny_gpt2}")
    assert describe_model_source(str(tiny_gpt2)) is None


def test_a_classifier_cannot_start_from_a_causal_lm_adapter_run(tiny_gpt2, adapter_run):
    folder, _ = adapter_run
    tokenizer = load_tokenizer(str(folder))
    with pytest.raises(UserError, match=rf"is a LoRA adapter run, which a classifier cannot start from; start from its base model '{tiny_gpt2}'"):
        load_classifier(str(folder), ["ham", "spam"], tokenizer)


@pytest.mark.parametrize(
    "asked, expected, note",
    [(None, 64, "no --max_length given"), (100, 64, "--max_length 100 is above it"), (32, 32, ""), (64, 64, "")],
)
def test_max_length_is_fitted_to_the_position_limit(asked, expected, note):
    length, said = fitted_max_length(asked, gpt2_classifier())  # 64 positions
    assert length == expected and note in said and (said == "") == (note == "")
    assert fitted_max_length(None, bloom_classifier()) == (None, "")  # ALiBi: no fixed limit
