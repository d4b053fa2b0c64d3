"""LoRA through PEFT: low-rank adapters on a frozen model, the task head fully trainable.

    --use_peft --lora_r 8 --lora_alpha 16 --lora_dropout 0.05 --lora_target_modules c_attn
    --merge_adapters     save a plain model (adapters merged in) that pipeline() loads as-is

Without `--merge_adapters` the run folder holds the adapter (adapter_model.safetensors,
adapter_config.json naming the base model), the trained head inside it, and the classifier's
config.json (labels); `load_sequence_classifier` / `python -m hf_finetune.predict` load it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel, Trainer

from .errors import UserError

ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoraArguments:
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of --trainable's layers."})
    lora_r: int = field(default=8, metadata={"help": "Rank of the LoRA update matrices."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling: the update is multiplied by alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated module names to adapt (e.g. 'c_attn,c_proj'), or 'all-linear'. "
            "Default: PEFT's choice for the architecture (GPT-2: c_attn; Bloom: query_key_value)."
        },
    )
    merge_adapters: bool = field(
        default=False, metadata={"help": "Merge the adapters into the weights on save, so pipeline() loads the model."}
    )


def lora_config(args: LoraArguments, task_type: TaskType) -> LoraConfig:
    if args.lora_r < 1:
        raise UserError(f"--lora_r: {args.lora_r} is not a rank; use a positive integer such as 8.")
    if not 0 <= args.lora_dropout < 1:
        raise UserError(f"--lora_dropout: {args.lora_dropout} is not a probability in [0, 1).")
    targets: str | list[str] | None = None
    if args.lora_target_modules:
        names = [name.strip() for name in args.lora_target_modules.split(",") if name.strip()]
        targets = "all-linear" if names == ["all-linear"] else names
    # For SEQ_CLS, PEFT adds the classification head ('score', 'classifier') to modules_to_save:
    # the head trains in full and is saved with the adapter.
    return LoraConfig(
        task_type=task_type, r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        target_modules=targets,
    )  # fmt: skip


def apply_lora(model: PreTrainedModel, args: LoraArguments, task_type: TaskType = TaskType.SEQ_CLS) -> PeftModel:
    """Freeze `model` and wrap it with trainable LoRA adapters (and a fully trainable head)."""
    config = lora_config(args, task_type)
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise UserError(
            f"--lora_target_modules: {args.lora_target_modules or 'the default'} does not fit "
            f"{model.__class__.__name__} ({message}); name its linear layers, e.g. 'c_attn' for GPT-2, "
            f"'query_key_value' for Bloom, or 'all-linear'."
        ) from None


def describe_lora(model: PeftModel, args: LoraArguments) -> str:
    config = model.peft_config["default"]
    targets = ",".join(sorted(config.target_modules)) if not isinstance(config.target_modules, str) else config.target_modules
    saved = ",".join(sorted(config.modules_to_save or []))
    return f"LoRA r={config.r} alpha={config.lora_alpha} dropout={config.lora_dropout} on {targets}; fully trained: {saved}"


def save_lora_run(trainer: Trainer, output_dir: str, base_model: str, merge: bool) -> None:
    """Save the trained model the way Trainer expects (every process calls this).

    merge=True: a plain model with the adapters folded into its weights (pipeline() loads it).
    merge=False: the adapter, its config naming the base model, and the classifier's config.
    """
    peft_model = trainer.model
    if merge:
        trainer.model = peft_model.merge_and_unload()
        trainer.save_model(output_dir)
        return
    adapter = peft_model.peft_config["default"]
    local = Path(base_model).expanduser()
    # A relative folder would not be found from anywhere else: record where it really is.
    adapter.base_model_name_or_path = str(local.resolve()) if local.exists() else base_model
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        classifier = peft_model.get_base_model()
        config = classifier.config
        config.architectures = [classifier.__class__.__name__]
        config.save_pretrained(output_dir)


def is_adapter_run(run_dir: str | Path) -> bool:
    return (Path(run_dir) / ADAPTER_CONFIG).is_file()


def load_sequence_classifier(run_dir: str | Path) -> PreTrainedModel:
    """The classifier of a run folder, whether it holds a full model or a LoRA adapter."""
    run_dir = Path(run_dir)
    if not is_adapter_run(run_dir):
        return AutoModelForSequenceClassification.from_pretrained(run_dir)
    base = json.loads((run_dir / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    config = AutoConfig.from_pretrained(run_dir)  # labels, pad token
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, config=config)
    except Exception as error:
        raise UserError(
            f"{run_dir / ADAPTER_CONFIG}: cannot load its base model '{base}' ({error.__class__.__name__}); "
            f"make it available there, or train with --merge_adapters for a self-contained model."
        ) from None
    return PeftModel.from_pretrained(model, run_dir)
