"""LoRA for the causal-LM methods (label-token, instruction, chat): what trains, and that the
adapter and merged saves load and give the same predictions, answers and logits."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import PROJECT, python_module

from hf_finetune import sft
from hf_finetune.core.model.loading import load_causal_lm, load_tokenizer
from hf_finetune.core.model.lora import LoraArguments, apply_lora
from hf_finetune.core.model.saved_runs import is_adapter_run, load_causal_lm_run
from hf_finetune.methods.chat import answers as chat_answer
from hf_finetune.methods.chat import train as chat_training
from hf_finetune.methods.instruction import train as instruction
from hf_finetune.predict import load_predictor

sys.path.insert(0, str(PROJECT / "recipes"))
import spanish_chat  # noqa: E402

pytestmark = pytest.mark.slow
LORA = ["--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0", "--seed", "7"]
QUICK = ["--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]
TEXTS = ["WINNER!! Claim your £1000 prize now, call 09061701461", "Are we still meeting at six?", "Ok lar... joking"]


def lora_b_weights(model) -> list[torch.Tensor]:
    return [parameter for name, parameter in model.named_parameters() if "lora_B" in name]


def assert_same_logits(adapter_run, merged_run, tokenizer_dir) -> None:
    tokenizer = load_tokenizer(str(tokenizer_dir))
    batch = tokenizer(["Name the capital of France.", "How do you say dog in Spanish?"], padding=True, return_tensors="pt")
    with torch.no_grad():
        from_adapter = load_causal_lm_run(adapter_run).eval()(**batch).logits
        from_merged = load_causal_lm_run(merged_run).eval()(**batch).logits
    torch.testing.assert_close(from_adapter, from_merged, rtol=1e-4, atol=1e-4)


def test_only_adapters_train_on_a_causal_lm(tiny_gpt2):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = apply_lora(load_causal_lm(str(tiny_gpt2), tokenizer), LoraArguments(lora_r=4))
    assert model.peft_config["default"].task_type == "CAUSAL_LM"
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert trainable and all("lora_" in name for name in trainable), trainable
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert any("wte" in name for name in frozen) and any("c_attn.base_layer" in name for name in frozen)


# --- label-token -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def label_token_runs(tmp_path_factory, tiny_gpt2, sms_zip):
    folder = tmp_path_factory.mktemp("lora-label-token")
    common = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--balance", "--max_steps", "8",
              "--learning_rate", "5e-3", "--max_length", "48", "--train_eval_samples", "8",
              "--per_device_eval_batch_size", "64", *LORA, *QUICK]  # fmt: skip
    sft.main([*common, "--output_dir", str(folder / "adapter")])
    sft.main([*common, "--output_dir", str(folder / "merged"), "--merge_adapters"])
    return folder / "adapter", folder / "merged"


def test_label_token_adapter_is_saved_with_its_label_words(label_token_runs, tiny_gpt2):
    adapter, merged = label_token_runs
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert settings["task_type"] == "CAUSAL_LM" and settings["r"] == 4
    assert settings["base_model_name_or_path"] == str(tiny_gpt2.resolve())
    assert (adapter / "label_token.json").is_file() and (adapter / "all_results.json").is_file()
    # No config.json: transformers' own from_pretrained(run) then fetches the base and attaches the adapter.
    assert not (adapter / "config.json").exists() and not (adapter / "model.safetensors").exists()
    assert not is_adapter_run(merged) and (merged / "model.safetensors").is_file()
    assert json.loads((merged / "config.json").read_text()).get("use_cache", True) is True
    assert all(weight.abs().sum() > 0 for weight in lora_b_weights(load_causal_lm_run(adapter))), "adapters moved"


def test_label_token_adapter_and_merged_runs_classify_the_same(label_token_runs):
    adapter, merged = label_token_runs
    from_adapter, from_merged = load_predictor(adapter)(TEXTS), load_predictor(merged)(TEXTS)
    assert [label for label, _ in from_adapter] == [label for label, _ in from_merged]
    for (_, p_adapter), (_, p_merged) in zip(from_adapter, from_merged):
        assert p_adapter == pytest.approx(p_merged, abs=1e-4)


# --- instruction -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instruction_runs(tmp_path_factory, tiny_gpt2, instruction_json):
    folder = tmp_path_factory.mktemp("lora-instruction")
    common = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(instruction_json), "--max_steps", "4",
              "--learning_rate", "5e-3", "--per_device_train_batch_size", "4", "--max_new_tokens", "3",
              "--generation_batch_size", "64", *LORA, *QUICK]  # fmt: skip
    instruction.main([*common, "--output_dir", str(folder / "adapter")])
    instruction.main([*common, "--output_dir", str(folder / "merged"), "--merge_adapters"])
    return folder / "adapter", folder / "merged"


def test_instruction_adapter_and_merged_runs_compute_the_same_logits(instruction_runs, tiny_gpt2):
    adapter, merged = instruction_runs
    assert is_adapter_run(adapter) and (adapter / "test_responses.json").is_file()
    assert (merged / "model.safetensors").is_file()
    assert all(weight.abs().sum() > 0 for weight in lora_b_weights(load_causal_lm_run(adapter)))
    assert_same_logits(adapter, merged, tiny_gpt2)


def test_generate_answers_from_an_adapter_run(instruction_runs):
    adapter, merged = instruction_runs
    answers = [
        python_module("hf_finetune.generate", str(run), "--instruction", "Name the capital of France.",
                      "--max_new_tokens", "4")  # fmt: skip
        for run in (adapter, merged)
    ]
    assert all(result.returncode == 0 for result in answers), answers[0].stderr[-2000:] + answers[1].stderr[-2000:]
    assert answers[0].stdout == answers[1].stdout


# --- chat (own Trainer and TRL) --------------------------------------------------------------


@pytest.mark.parametrize("method, merge", [("masked", False), ("completion_only", True)])
def test_chat_lora_run_reloads_and_answers_as_it_did_in_training(tmp_path, tiny_gpt2, method, merge):
    output = tmp_path / method
    argv = ["--model_name_or_path", str(tiny_gpt2), "--method", method, "--num_train_epochs", "2",
            "--learning_rate", "5e-3", "--output_dir", str(output), "--answers_every_epoch", "false", *LORA,
            *QUICK, *(["--merge_adapters"] if merge else [])]  # fmt: skip
    [row] = chat_training.main(argv, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO)
    assert row["trainable"].startswith("LoRA r=4") and 0 < row["trainable_parameters"] < row["total_parameters"] / 100
    assert is_adapter_run(output) is not merge
    questions = [item["question"] for item in row["training_answers"]]
    reloaded = chat_answer.answer_run(output, questions, max_new_tokens=spanish_chat.DEFAULTS.get("max_new_tokens", 16))
    assert reloaded == [item["answer"] for item in row["training_answers"]]
