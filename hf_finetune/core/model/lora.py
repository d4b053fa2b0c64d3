"""LoRA through PEFT: low-rank adapters on a frozen model; a classification head trains in full.

    --use_peft --lora_r 8 --lora_alpha 16 --lora_dropout 0.05 --lora_target_modules c_attn
    --merge_adapters     save a plain model (adapters merged in) that pipeline() loads as-is

Every method takes these flags (head, label-token, instruction, chat). Without
`--merge_adapters` the run folder holds the adapter (adapter_model.safetensors,
adapter_config.json naming the base model; for the head method also the trained head and the
classifier's config.json); saved_runs.py, predict, generate and chat_answer load it.
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel

from hf_finetune.core.arguments import LoraArguments
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import is_sequence_classifier


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


def apply_lora(model: PreTrainedModel, args: LoraArguments) -> PeftModel:
    """Freeze `model` and wrap it with trainable LoRA adapters (and a classifier's head, fully trainable)."""
    config = lora_config(args, TaskType.SEQ_CLS if is_sequence_classifier(model) else TaskType.CAUSAL_LM)
    try:
        return get_peft_model(model, config)
    except ValueError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise UserError(
            f"--lora_target_modules: {args.lora_target_modules or 'the default'} does not fit "
            f"{model.__class__.__name__} ({message}); name its linear layers, e.g. 'c_attn' for GPT-2, "
            f"'query_key_value' for Bloom, or 'all-linear'."
        ) from None


def describe_lora(model: PeftModel) -> str:
    config = model.peft_config["default"]
    targets = ",".join(sorted(config.target_modules)) if not isinstance(config.target_modules, str) else config.target_modules
    saved = ",".join(sorted(config.modules_to_save or []))
    return f"LoRA r={config.r} alpha={config.lora_alpha} dropout={config.lora_dropout} on {targets}" + (
        f"; fully trained: {saved}" if saved else "; everything else frozen"
    )


def drop_reference_copy(model) -> None:
    """TRL's DPO and GRPO trainers copy an adapter they are handed into a "ref" adapter, the reference
    for adapters trained before. Ours was just created (a zero update), so switching adapters off gives
    the same reference: without the copy a step runs one adapter, and the saved run holds one."""
    if hasattr(model, "peft_config") and "ref" in model.peft_config:
        model.delete_adapter("ref")
