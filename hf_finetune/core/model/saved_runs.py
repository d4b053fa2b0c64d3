"""Load a finished run folder: a full model, or a LoRA adapter that names its base model.

A full model has config.json and model.safetensors. An adapter run has adapter_config.json
and adapter_model.safetensors; a classifier's adapter run also keeps its config.json (labels),
a causal LM's has none, so that `AutoModelForCausalLM.from_pretrained(run)` and pipeline()
fetch the base model and attach the adapter on their own.

Every way a folder can fail to be a finished run (missing, a --compare folder, a run that did
not finish saving, damaged files) is one sentence that names the folder and the way out.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import ADAPTER_CONFIG, adapter_base, load_causal_lm_weights, load_failure
from hf_finetune.core.report.console import logger
from hf_finetune.core.run.ownership import series_kind
from hf_finetune.core.run.saving import STAGING


def is_adapter_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / ADAPTER_CONFIG).is_file()


def _has_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or is_adapter_run(folder)


def require_saved_run(run_dir: str | Path) -> Path:
    """`run_dir` as a Path, or one sentence saying why it is not a finished run's folder."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir} does not exist; pass the --output_dir of a finished run.")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file; pass the --output_dir folder of a finished run.")
    if (run_dir / STAGING).exists():
        raise UserError(
            f"{run_dir} is a run that did not finish saving its model ({STAGING} is still there); "
            f"train it again, or resume it with the same --output_dir."
        )
    if not _has_model(run_dir):
        subruns = sorted(str(child) for child in run_dir.iterdir() if child.is_dir() and _has_model(child)
                         and not child.name.startswith("checkpoint-"))  # fmt: skip
        if subruns:
            each = "one run per seed (--seeds)" if series_kind(run_dir) == "seeds" else "one run per method (--compare)"
            raise UserError(f"{run_dir} holds {each}; pass one of them: {', '.join(subruns)}.")
        checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda path: path.stat().st_mtime)
        if checkpoints:
            raise UserError(
                f"{run_dir} holds checkpoints but no final model: its run did not finish; resume it with the same "
                f"--output_dir, or pass the checkpoint {checkpoints[-1]}."
            )
        raise UserError(
            f"{run_dir} is not a saved run (no config.json or {ADAPTER_CONFIG}); pass the --output_dir of a finished run."
        )
    for name in ("config.json", ADAPTER_CONFIG):
        if (run_dir / name).is_file():
            try:
                json.loads((run_dir / name).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise UserError(f"{run_dir / name} is not valid JSON (damaged); train the run again.") from None
    return run_dir


def adapter_settings(run_dir: Path) -> dict:
    return json.loads((run_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def architectures(run_dir: Path) -> list[str]:
    try:
        return AutoConfig.from_pretrained(run_dir).architectures or []
    except Exception as error:  # an unknown model_type, a config of another library, ...
        raise UserError(f"{run_dir / 'config.json'} is not a model config transformers reads ({error.__class__.__name__}).") from None


def is_causal_lm_run(run_dir: Path) -> bool:
    if is_adapter_run(run_dir) and not (run_dir / "config.json").is_file():
        return adapter_settings(run_dir).get("task_type") == "CAUSAL_LM"
    return any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures(run_dir))


def has_chat_template(run_dir: Path) -> bool:
    """Whether the run's tokenizer carries a chat template (the chat method saves one)."""
    if (run_dir / "chat_template.jinja").is_file() or (run_dir / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((run_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def _load_base(run_dir: Path, load):
    base = adapter_base(run_dir)
    try:
        return load(base)
    except Exception as error:  # UserError included: this sentence names the file to fix
        cause = error.__class__.__name__ if not isinstance(error, UserError) else "not found or incomplete"
        raise UserError(
            f"{run_dir / ADAPTER_CONFIG}: cannot load its base model '{base}' ({cause}); "
            f"make it available there, or train with --merge_adapters for a self-contained model."
        ) from None


def _with_adapter(model, run_dir: Path):
    from peft import PeftModel

    try:
        with warnings.catch_warnings():  # PEFT calls a transformers method deprecated in 5.x: nothing for a user
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return PeftModel.from_pretrained(model, run_dir)
    except Exception as error:
        raise UserError(
            f"{run_dir}: its LoRA adapter does not load ({error.__class__.__name__}: a damaged or missing "
            f"adapter_model.safetensors); train the run again."
        ) from None


def load_sequence_classifier(run_dir: str | Path) -> PreTrainedModel:
    """The classifier of a run folder, whether it holds a full model or a LoRA adapter."""
    run_dir = require_saved_run(run_dir)
    if not is_adapter_run(run_dir):
        try:
            return AutoModelForSequenceClassification.from_pretrained(run_dir)
        except Exception as error:
            raise load_failure("model", str(run_dir), error, flag="") from None
    config = AutoConfig.from_pretrained(run_dir)  # labels, pad token
    model = _load_base(run_dir, lambda base: classifier_without_its_head(base, config, run_dir))
    return _with_adapter(model, run_dir)


def classifier_without_its_head(base: str, config, run_dir: Path) -> PreTrainedModel:
    """The base model as a classifier, its head new: the adapter holds the trained head (PEFT's
    modules_to_save), so transformers' report of the head's weights as missing is no news; any other
    missing weight is said."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(base, config=config, output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(level)
    in_adapter = adapter_settings(run_dir).get("modules_to_save") or []
    missing = [key for key in loading.get("missing_keys", []) if key.split(".")[0] not in in_adapter]
    if missing:
        logger.warning(f"{run_dir}: its base model '{base}' lacks {', '.join(sorted(missing))}; they start new.")
    return model


def load_causal_lm_run(run_dir: str | Path) -> PreTrainedModel:
    """The causal LM of a run folder, whether it holds a full model or a LoRA adapter (kept as a
    PeftModel; a base that is itself an adapter run is loaded with its adapter merged in)."""
    run_dir = require_saved_run(run_dir)
    if not is_adapter_run(run_dir):
        return load_causal_lm_weights(str(run_dir), flag="")
    return _with_adapter(_load_base(run_dir, load_causal_lm_weights), run_dir)
