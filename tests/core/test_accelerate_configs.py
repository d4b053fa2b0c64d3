"""The ready-made accelerate configs load with accelerate's own loader and say when to use them."""

from __future__ import annotations

import importlib.util
import itertools
import re
import sys

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DistributedType
from conftest import PROJECT, run_command

CONFIG_DIR = PROJECT / "accelerate_configs"
EXPECTED = {
    "cpu.yaml": DistributedType.MULTI_GPU,  # the torchrun launcher; the processes run on CPU
    "single_gpu.yaml": DistributedType.NO,
    "one_process.yaml": DistributedType.NO,  # one process on whatever device the machine has
    "multi_gpu.yaml": DistributedType.MULTI_GPU,
    "fsdp.yaml": DistributedType.FSDP,
    "deepspeed_zero2.yaml": DistributedType.DEEPSPEED,
    "deepspeed_zero3.yaml": DistributedType.DEEPSPEED,
    "multi_node.yaml": DistributedType.MULTI_GPU,
}


def test_every_expected_config_is_there_and_nothing_else():
    assert sorted(path.name for path in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerates_loader(name):
    config = load_config_from_file(str(CONFIG_DIR / name))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == EXPECTED[name]
    assert config.mixed_precision in ("no", "fp16", "bf16")
    assert config.num_processes >= 1 and config.num_machines >= 1
    # accelerate launch copies nested keys onto its own options; a misspelt one would be ignored.
    options = {action.dest for action in launch_command_parser()._actions}
    for section in (config.fsdp_config, config.deepspeed_config):
        unknown = [key for key in section if key not in options]
        assert not unknown, f"{name}: keys accelerate launch does not know: {unknown}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_opens_with_a_comment_on_when_to_use_it(name):
    lines = (CONFIG_DIR / name).read_text(encoding="utf-8").splitlines()
    opening = " ".join(line.lstrip("# ") for line in itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert opening, f"{name} does not open with a comment"
    # A sentence saying when to use it: "Use it when/for/on ...".
    assert re.search(r"\bUse it (when|for|on|to) \w+", opening), f"{name}'s opening comment never says when to use it"


def test_specific_choices():
    fsdp = load_config_from_file(str(CONFIG_DIR / "fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_version"] == 2  # FSDP2: frozen and trainable parameters mix freely
    assert load_config_from_file(str(CONFIG_DIR / "deepspeed_zero2.yaml")).deepspeed_config["zero_stage"] == 2
    zero3 = load_config_from_file(str(CONFIG_DIR / "deepspeed_zero3.yaml")).deepspeed_config
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"]  # a full model in the run folder
    node = load_config_from_file(str(CONFIG_DIR / "multi_node.yaml"))
    assert node.num_machines > 1 and node.main_process_ip and node.main_process_port
    assert load_config_from_file(str(CONFIG_DIR / "cpu.yaml")).use_cpu


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed")
def test_deepspeed_config_without_deepspeed_says_how_to_install():
    result = run_command(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
         str(CONFIG_DIR / "deepspeed_zero2.yaml"), "recipes/spam.py"],
        timeout=120,
    )
    assert result.returncode != 0
    assert "DeepSpeed is not installed" in result.stderr and "pip" in result.stderr


def test_a_deepspeed_config_without_a_gpu_is_refused_instead_of_silently_running_ddp(monkeypatch):
    """accelerate 1.16 keeps CPU workers on DDP whatever the DeepSpeed config says (tried with DeepSpeed
    0.19.8's CPU accelerator: docs/distributed-precision.md). The check itself: under `accelerate launch`,
    TrainingArguments needs DeepSpeed installed before any check of ours runs, and CI has none."""
    from hf_finetune.core.errors import UserError
    from hf_finetune.core.run import preflight

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # what `accelerate launch` with a DeepSpeed config exports
    monkeypatch.setattr(preflight, "accelerator_available", lambda: False)
    with pytest.raises(UserError, match=r"DeepSpeed \(an accelerate config .*\) needs GPUs here.*configs/cpu.yaml"):
        preflight.check_fsdp_device()
    monkeypatch.setattr(preflight, "accelerator_available", lambda: True)
    preflight.check_fsdp_device()
