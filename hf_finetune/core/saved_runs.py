"""Load a finished run folder: a full model, or a LoRA adapter that names its base model.

A full model has config.json and model.safetensors. An adapter run has adapter_config.json
and adapter_model.safetensors; a classifier's adapter run also keeps its config.json (labels),
a causal LM's has none, so that `AutoModelForCausalLM.from_pretrained(run)` and pipeline()
fetch the base model and attach the adapter on their own.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel

from .errors import UserError

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / ADAPTER_CONFIG).is_file()


def require_saved_run(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file() and not is_adapter_run(run_dir):
        raise UserError(
            f"{run_dir} is not a saved run (no config.json or {ADAPTER_CONFIG}); pass the --output_dir of a finished run."
        )
    return run_dir


def adapter_settings(run_dir: Path) -> dict:
    return json.loads((run_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def is_causal_lm_run(run_dir: Path) -> bool:
    if is_adapter_run(run_dir) and not (run_dir / "config.json").is_file():
        return adapter_settings(run_dir).get("task_type") == "CAUSAL_LM"
    architectures = AutoConfig.from_pretrained(run_dir).architectures or []
    return any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures)


def _load_base(run_dir: Path, load):
    base = adapter_settings(run_dir).get("base_model_name_or_path")
    try:
        return load(base)
    except Exception as error:
        raise UserError(
            f"{run_dir / ADAPTER_CONFIG}: cannot load its base model '{base}' ({error.__class__.__name__}); "
            f"make it available there, or train with --merge_adapters for a self-contained model."
        ) from None


def load_sequence_classifier(run_dir: str | Path) -> PreTrainedModel:
    """The classifier of a run folder, whether it holds a full model or a LoRA adapter."""
    run_dir = require_saved_run(run_dir)
    if not is_adapter_run(run_dir):
        return AutoModelForSequenceClassification.from_pretrained(run_dir)
    from peft import PeftModel

    config = AutoConfig.from_pretrained(run_dir)  # labels, pad token
    model = _load_base(run_dir, lambda base: AutoModelForSequenceClassification.from_pretrained(base, config=config))
    return PeftModel.from_pretrained(model, run_dir)


def load_causal_lm_run(run_dir: str | Path) -> PreTrainedModel:
    """The causal LM of a run folder, whether it holds a full model or a LoRA adapter."""
    run_dir = require_saved_run(run_dir)
    if not is_adapter_run(run_dir):
        return AutoModelForCausalLM.from_pretrained(run_dir)
    from peft import PeftModel

    model = _load_base(run_dir, AutoModelForCausalLM.from_pretrained)
    return PeftModel.from_pretrained(model, run_dir)
