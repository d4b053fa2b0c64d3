"""Mixed precision and gradient checkpointing: the head method in detail, every recipe end to end."""

from __future__ import annotations

import contextlib
import json
import math
import sys

import pytest
import torch
import yaml
from conftest import PROJECT
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainingArguments

from hf_finetune.core.arguments import ModelArguments, RunArguments
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model import precision
from hf_finetune.core.model.loading import load_classifier, load_tokenizer
from hf_finetune.core.model.trainable import TrainablePolicy, apply_trainable_policy, transformer_blocks
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.preflight import settle_training_args
from hf_finetune.methods.chat import train as chat_training
from hf_finetune.methods.classify.head import train as classification
from hf_finetune.methods.instruction import train as instruction
from hf_finetune.recipes import spam


def short_run_argv(model, data, output, *extra) -> list[str]:
    return [
        "--model_name_or_path", str(model), "--dataset", str(data), "--balance",
        "--trainable", "last_block", "--max_steps", "3", "--max_length", "32",
        "--eval_strategy", "no", "--save_strategy", "no", "--train_eval_samples", "8",
        "--per_device_eval_batch_size", "64", "--report_to", "none", "--output_dir", str(output), *extra,
    ]  # fmt: skip


# --- precision -------------------------------------------------------------------------------


def test_bf16_autocast_check_really_computes_in_bf16(monkeypatch):
    if precision.cpu_bf16_instructions() is not None:  # where the check is asked at all
        assert precision.bf16_autocast_runs_on_cpu()
    # An autocast that leaves the matmul in fp32 must be caught.
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    assert not precision.bf16_autocast_runs_on_cpu()


@pytest.mark.slow
def test_bf16_run_on_cpu_says_so_in_the_plan_where_native_and_is_refused_elsewhere(tiny_gpt2, sms_zip, tmp_path,
                                                                                     capsys):
    # The run's own detection decides which of the two this machine must show.
    instructions = precision.cpu_bf16_instructions()
    output = tmp_path / "run"
    argv = short_run_argv(tiny_gpt2, sms_zip, output, "--bf16")
    if instructions is None:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(classification.main, argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("error: --bf16: this CPU "), error
        assert "no native bf16 instructions" in error and "train in fp32" in error
        assert not output.exists()
        return
    results = classification.main(argv)
    plan = capsys.readouterr().out
    assert f"bf16 mixed precision (autocast on cpu, {instructions}; weights and optimizer in fp32)" in plan
    assert sum(map(sum, results["test_confusion_matrix"])) == 300  # it trained and scored the whole test split
    saved = load_file(output / "model.safetensors")
    assert all(tensor.dtype == torch.float32 for tensor in saved.values()), "weights stay fp32 under autocast"


def test_bf16_refused_with_the_reason_where_the_cpu_has_no_bf16(tiny_gpt2, sms_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: None)
    with pytest.raises(UserError, match=r"--bf16: this CPU .* no native bf16 instructions.*fp32"):
        classification.main(short_run_argv(tiny_gpt2, sms_zip, tmp_path / "run", "--bf16"))
    assert not (tmp_path / "run").exists(), "nothing may be written for a refused run"


def test_accelerate_config_mixed_precision_is_honoured_and_checked(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `mixed_precision: bf16` exports
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")
    assert precision.mixed_precision(args) == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: None)
    with pytest.raises(UserError, match="mixed_precision: bf16 \\(accelerate config\\)"):
        precision.check_precision(args)


def test_training_arguments_built_directly_are_an_explicit_fp32_choice():
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none")  # bf16=False, fp16=False
    assert precision.precision_for_hardware(args) == {}
    assert precision.describe_precision(args) == "fp32 (--bf16 false)"


# --- the precision chosen for the hardware ---------------------------------------------------------


def test_cuda_gpus_get_bf16_where_native_else_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert precision.hardware_precision(torch.device("cuda")).precision == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)  # emulated only
    choice = precision.hardware_precision(torch.device("cuda"))
    assert choice.precision == "fp16" and "Tesla T4 has no bf16, so fp16 with loss scaling" in choice.reason


@pytest.mark.parametrize("instructions, autocast_works, expected", [
    ("AMX", True, "bf16"), ("AVX512-BF16", True, "bf16"), ("Arm BF16", True, "bf16"),
    (None, True, "no"), ("AVX512-BF16", False, "no"),
])  # fmt: skip
def test_cpus_get_bf16_only_with_native_instructions(monkeypatch, instructions, autocast_works, expected):
    monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: instructions)
    monkeypatch.setattr(precision, "bf16_autocast_runs_on_cpu", lambda: autocast_works)
    choice = precision.hardware_precision(torch.device("cpu"))
    assert choice.precision == expected
    if instructions is None:
        assert "no native bf16 instructions" in choice.reason and "emulated" in choice.reason


def settled(argv: list[str], hardware: str, monkeypatch, env: dict | None = None) -> TrainingArguments:
    """The TrainingArguments a head-method command line settles to, on hardware that computes `hardware`."""
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(precision, "hardware_precision", lambda device: precision.HardwarePrecision(hardware, "probe"))
    parsed = parse_arguments(classification.ARGUMENTS, ["--output_dir", "unused", *argv], spam.DEFAULTS)
    args = next(item for item in parsed if isinstance(item, TrainingArguments))
    if not any(token.split("=")[0] in ("--bf16", "--fp16") for token in argv):
        assert args.bf16 is None and args.fp16 is None, "a missing switch must be told from --bf16 false"
    settle_training_args(args)
    return args


@pytest.mark.parametrize("argv, hardware, expected, chosen", [
    ([], "bf16", "bf16", True),  # native bf16: chosen
    ([], "no", "no", True),  # no native bf16: fp32, chosen
    ([], "fp16", "fp16", True),  # a CUDA GPU without bf16
    (["--bf16", "false"], "bf16", "no", False),  # the explicit fp32 choice
    (["--bf16=false"], "fp16", "no", False),
    (["--bf16"], "bf16", "bf16", False),
    (["--fp16"], "bf16", "fp16", False),  # the user's choice wins over the hardware's
    (["--fp16", "false"], "bf16", "bf16", True),  # no fp16, but bf16 where native
    (["--fp16", "false"], "fp16", "no", True),
])  # fmt: skip
def test_the_users_choice_wins_and_the_hardware_chooses_otherwise(monkeypatch, argv, hardware, expected, chosen):
    args = settled(argv, hardware, monkeypatch)
    assert precision.mixed_precision(args) == expected and args.mixed_precision == expected
    assert (args.bf16, args.fp16) == (expected == "bf16", expected == "fp16")
    line = precision.describe_precision(args)
    assert ("chosen for this machine: probe" in line) == chosen, line
    if not chosen:
        assert line.endswith({"bf16": "(--bf16)", "fp16": "(--fp16)", "no": "(--bf16 false)"}[expected]), line


def test_an_accelerate_config_precision_counts_as_a_choice(monkeypatch):
    args = settled([], "no", monkeypatch, env={"ACCELERATE_MIXED_PRECISION": "fp16"})
    assert precision.mixed_precision(args) == "fp16"
    assert precision.describe_precision(args).endswith("(mixed_precision: fp16 in the accelerate config)")
    # accelerate's own default, `no`, chooses nothing
    args = settled([], "bf16", monkeypatch, env={"ACCELERATE_MIXED_PRECISION": "no"})
    assert precision.mixed_precision(args) == "bf16" and precision.chosen_for_hardware(args)


def test_config_yaml_keeps_a_hardware_choice_unset_and_a_users_choice(monkeypatch, tmp_path):
    def config_of(argv):
        args = settled(argv, "bf16", monkeypatch)
        method = Method(ModelArguments(), RunArguments(), args, None)
        return method.config()

    assert config_of([])["bf16"] is None  # chosen again wherever the file is used
    assert config_of(["--bf16"])["bf16"] is True
    assert config_of(["--bf16", "false"]).get("bf16", False) is False
    # and the file, used again, leaves the choice to the hardware
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_of([])))
    args = settled(["--config", str(path)], "no", monkeypatch)
    assert precision.mixed_precision(args) == "no" and precision.chosen_for_hardware(args) == "probe"


def test_the_hardware_is_asked_where_the_run_trains(monkeypatch):
    """Without a mock: this machine's own answer, whichever it is, is what an unflagged run uses."""
    parsed = parse_arguments(classification.ARGUMENTS, ["--output_dir", "unused"], spam.DEFAULTS)
    args = next(item for item in parsed if isinstance(item, TrainingArguments))
    settle_training_args(args)
    native = precision.cpu_bf16_instructions() is not None and precision.bf16_autocast_runs_on_cpu()
    assert precision.mixed_precision(args) == ("bf16" if native else "no")
    line = precision.describe_precision(args)
    assert line.startswith("bf16 mixed precision" if native else "fp32, chosen for this machine: this CPU"), line


# --- gradient checkpointing ------------------------------------------------------------------


def frozen_body_gradients(model_dir, checkpointing_kwargs):
    """Gradients of the last block after one backward pass with everything below it frozen."""
    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(model_dir))
    model = load_classifier(str(model_dir), ["ham", "spam"], tokenizer)
    apply_trainable_policy(model, TrainablePolicy.parse("last_block"))
    model.config.use_cache = False
    if checkpointing_kwargs is not None:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpointing_kwargs)
        assert model.is_gradient_checkpointing
    model.train()
    model.config.resid_pdrop = model.config.attn_pdrop = model.config.embd_pdrop = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = tokenizer(["WINNER! claim your prize", "see you at six"], padding=True, return_tensors="pt")
    model(**batch, labels=torch.tensor([1, 0])).loss.backward()
    last_block = transformer_blocks(model)[-1]
    return {name: parameter.grad for name, parameter in last_block.named_parameters()}


def test_checkpointing_with_frozen_body_gives_the_trainable_block_its_gradients(tiny_gpt2):
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", activation_checkpointing=True)
    settle_training_args(args)  # what every recipe does: non-reentrant checkpointing
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}
    checkpointed = frozen_body_gradients(tiny_gpt2, args.activation_checkpointing_kwargs)
    plain = frozen_body_gradients(tiny_gpt2, None)
    for name, gradient in checkpointed.items():
        assert gradient is not None and gradient.abs().sum() > 0, f"{name} got no gradient"
        torch.testing.assert_close(gradient, plain[name], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_checkpointed_run_trains_with_cache_off_and_generation_cache_on(tiny_gpt2, sms_zip, tmp_path):
    output = tmp_path / "run"
    classification.main(short_run_argv(tiny_gpt2, sms_zip, output, "--gradient_checkpointing"))
    results = json.loads((output / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"])
    # It trained: the last block moved through the checkpointed, frozen body; the first block did not.
    before, after = load_file(tiny_gpt2 / "model.safetensors"), load_file(output / "model.safetensors")
    assert all(torch.equal(before[name], after[name]) for name in before if ".h.0." in name)
    assert any(not torch.equal(before[name], after[name]) for name in before if ".h.1." in name)
    config = json.loads((output / "config.json").read_text())
    assert config.get("use_cache", True) is True, "the saved model must use its cache when generating"


def assert_only_the_last_block_trained(base_dir, run_dir) -> None:
    """Frozen embeddings and first block unchanged, last block moved, generation cache on."""
    base, trained = AutoModelForCausalLM.from_pretrained(base_dir), AutoModelForCausalLM.from_pretrained(run_dir)
    before, after = dict(base.named_parameters()), dict(trained.named_parameters())
    assert torch.equal(before["transformer.wte.weight"], after["transformer.wte.weight"])
    assert all(torch.equal(before[name], after[name]) for name in before if ".h.0." in name)
    moved = [name for name in before if ".h.1." in name and not torch.equal(before[name], after[name])]
    assert moved, "checkpointing through the frozen body left the last block without gradients"
    assert trained.config.use_cache is True


QUICK = ["--trainable", "last_block", "--gradient_checkpointing", "--learning_rate", "1e-3", "--eval_strategy", "no",
         "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip


@pytest.mark.slow
def test_checkpointed_instruction_run_trains_its_last_block(tiny_gpt2, instruction_json, tmp_path):
    output = tmp_path / "instruction"
    instruction.main(["--model_name_or_path", str(tiny_gpt2), "--dataset", str(instruction_json), "--max_steps", "2",
                      "--max_new_tokens", "2", "--generation_batch_size", "64", "--output_dir", str(output), *QUICK])
    assert_only_the_last_block_trained(tiny_gpt2, output)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["masked", "completion_only"])
def test_checkpointed_chat_run_trains_its_last_block(tiny_gpt2, tmp_path, method):
    sys.path.insert(0, str(PROJECT / "recipes"))
    import spanish_chat

    output = tmp_path / method
    chat_training.main(["--model_name_or_path", str(tiny_gpt2), "--method", method, "--num_train_epochs", "1",
                        "--answers_every_epoch", "false", "--output_dir", str(output), *QUICK],
                       defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO)  # fmt: skip
    assert_only_the_last_block_trained(tiny_gpt2, output)
