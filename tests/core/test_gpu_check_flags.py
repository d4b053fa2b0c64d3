"""benchmarks/gpu_check.py: the command line it gives each recipe parses with that recipe's flags (the
dry run itself, which trains, is tests/e2e/test_gpu_check.py)."""

from __future__ import annotations

import importlib
import sys

import pytest
from conftest import PROJECT, SHARED, shared_path
from transformers import TrainingArguments

from hf_finetune.core.parsing import parse_arguments

sys.path.insert(0, str(PROJECT / "benchmarks"))
import gpu_check  # noqa: E402

ARGUMENTS = {
    "spam": ("hf_finetune.methods.classify.head.train", "hf_finetune.recipes.spam"),
    "classify": ("hf_finetune.methods.classify.command", "hf_finetune.recipes.classify"),
    "instruction": ("hf_finetune.methods.instruction.train", "hf_finetune.recipes.instruction"),
    "chat": ("hf_finetune.methods.chat.train", "hf_finetune.recipes.spanish_chat"),
    "preference": ("hf_finetune.methods.preference.train", "hf_finetune.recipes.preference"),
}


@pytest.mark.parametrize("recipe", gpu_check.RECIPES)
@pytest.mark.parametrize("dry", [True, False])
def test_every_recipe_takes_the_check_flags(recipe, dry, tmp_path):
    shared_path("data")
    argv = gpu_check.recipe_argv(recipe, "some-model", SHARED, tmp_path, steps=3, dry=dry)
    method, recipe_module = (importlib.import_module(name) for name in ARGUMENTS[recipe])
    parsed = parse_arguments(method.ARGUMENTS, argv, recipe_module.DEFAULTS)
    args = next(item for item in parsed if isinstance(item, TrainingArguments))
    assert args.max_steps == 3 and args.gradient_checkpointing and args.eval_strategy == "no"
    assert args.bf16 is None and args.fp16 is None, "the check trains in the precision chosen for the machine"
