"""LoRA through PEFT for the head method: what trains, and how the two kinds of save load."""

from __future__ import annotations

import json

import pytest
import torch

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.lora import LoraArguments, apply_lora
from hf_finetune.core.model.saved_runs import is_adapter_run, load_sequence_classifier
from hf_finetune.methods.classify.head import train as classification
from hf_finetune.predict import load_predictor

TEXTS = [
    "WINNER!! You have won a £1000 cash prize, call 09061701461 now to claim",
    "Are we still meeting at six tonight?",
    "URGENT: your mobile number has been awarded a bonus, text CLAIM to 80082",
    "Sorry, I'll call you later, I'm in a meeting",
    "Free entry in a weekly competition to win FA Cup final tickets, text FA to 87121",
    "Ok lar... joking with you",
]


def lora_argv(model, data, output, *extra) -> list[str]:
    return [
        "--model_name_or_path", str(model), "--dataset", str(data), "--balance",
        "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
        "--learning_rate", "5e-3", "--max_steps", "8", "--max_length", "32", "--seed", "7",
        "--eval_strategy", "no", "--save_strategy", "no", "--train_eval_samples", "8",
        "--per_device_eval_batch_size", "64", "--report_to", "none", "--output_dir", str(output), *extra,
    ]  # fmt: skip


def test_only_adapters_and_the_head_train(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = apply_lora(load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer), LoraArguments(lora_r=4))
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable, "nothing trains"
    for name in trainable:
        assert "lora_" in name or ".score." in name, f"{name} should be frozen"
    assert any(".score." in name for name in trainable), "the classification head must train in full"
    assert any("lora_A" in name for name in trainable) and any("lora_B" in name for name in trainable)
    frozen = [name for name, parameter in model.named_parameters() if not parameter.requires_grad]
    assert any("wte" in name for name in frozen) and any("c_attn.base_layer" in name for name in frozen)


def test_target_modules_that_do_not_exist_are_refused(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer)
    with pytest.raises(UserError, match="--lora_target_modules: q_proj"):
        apply_lora(model, LoraArguments(lora_target_modules="q_proj"))


def test_bad_rank_is_refused(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = load_classifier(str(tiny_gpt2), ["ham", "spam"], tokenizer)
    with pytest.raises(UserError, match="--lora_r"):
        apply_lora(model, LoraArguments(lora_r=0))


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory, tiny_gpt2, sms_zip):
    folder = tmp_path_factory.mktemp("lora")
    adapter = folder / "adapter"
    merged = folder / "merged"
    classification.main(lora_argv(tiny_gpt2, sms_zip, adapter))
    classification.main(lora_argv(tiny_gpt2, sms_zip, merged, "--merge_adapters"))
    return adapter, merged


def test_unmerged_save_is_an_adapter_that_names_its_base(lora_runs, tiny_gpt2):
    adapter, _ = lora_runs
    assert is_adapter_run(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert config["task_type"] == "SEQ_CLS" and "score" in config["modules_to_save"]
    assert config["base_model_name_or_path"] == str(tiny_gpt2.resolve())
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "model.safetensors").exists()
    assert json.loads((adapter / "config.json").read_text())["id2label"] == {"0": "ham", "1": "spam"}
    assert "LoRA r=4" in (adapter / "config.yaml").read_text() or "use_peft: true" in (adapter / "config.yaml").read_text()


def test_merged_save_is_a_plain_model_that_pipeline_loads(lora_runs):
    from transformers import pipeline

    _, merged = lora_runs
    assert not is_adapter_run(merged) and (merged / "model.safetensors").is_file()
    classify = pipeline("text-classification", model=str(merged))
    assert {answer["label"] for answer in classify(TEXTS)} <= {"ham", "spam"}


def test_merged_and_unmerged_predict_the_same(lora_runs):
    adapter, merged = lora_runs
    from_adapter = load_predictor(adapter)(TEXTS)
    from_merged = load_predictor(merged)(TEXTS)
    assert [label for label, _ in from_adapter] == [label for label, _ in from_merged]
    for (_, p_adapter), (_, p_merged) in zip(from_adapter, from_merged):
        assert p_adapter == pytest.approx(p_merged, abs=1e-4)


def test_adapter_training_moved_the_head_and_the_adapters(lora_runs, tiny_gpt2):
    adapter, _ = lora_runs
    model = load_sequence_classifier(adapter)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b), "lora_B starts at zero; training must move it"
    trained_head = model.base_model.model.score.modules_to_save["default"].weight
    original_head = model.base_model.model.score.original_module.weight
    assert not torch.allclose(trained_head, original_head)
