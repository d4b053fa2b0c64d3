"""The final model, saved staged: written beside its place, then moved in file by file, so a
crash leaves the old files or the new ones. A LoRA run saves a merged model or its adapter.
A disk that fills up while the model is written stops the run with one sentence; the staging
folder goes, the files already in the output folder (an earlier run, checkpoints) stay."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from peft import TaskType
from transformers import Trainer

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.lora import LoraArguments
from hf_finetune.core.report.files import FINISHED_MARKER, NEW_FILE_MODE
from hf_finetune.core.run.checkpoints import newest_complete_checkpoint, write_failure

STAGING = ".final-model.partial"


def save_final_model(trainer: Trainer, output_dir: str) -> None:
    """`trainer.save_model` into a staging folder, then move each file into place atomically.

    Every process calls this (FSDP/DeepSpeed gather weights collectively); the main process moves.
    """
    staging = Path(output_dir) / STAGING
    try:
        trainer.save_model(str(staging))
    except Exception as error:
        cause = write_failure(error, output_dir)
        if cause is None:
            raise
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"saving the final model into {output_dir} failed: {cause}; {what_was_kept(output_dir)}.") from None
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        for item in staging.iterdir():
            target = Path(output_dir) / item.name
            if item.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                item.rename(target)
            else:
                item.chmod(NEW_FILE_MODE)  # safetensors writes 0600: readable like the rest of the folder
                os.replace(item, target)
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


def save_trained_model(trainer: Trainer, output_dir: str, base_model: str, args: LoraArguments) -> None:
    """Save the trained model, staged, the way Trainer expects (every process calls this).

    Without LoRA: the whole model. With it, --merge_adapters: a plain model with the adapters
    folded into its weights (pipeline() loads it); otherwise the adapter, its config naming the
    base model, and for a classifier its config.json (labels). The saved config turns the
    generation cache back on.
    """
    model = trainer.model
    model.config.use_cache = True
    if not args.use_peft:
        save_final_model(trainer, output_dir)
        return
    if args.merge_adapters:
        trainer.model = model.merge_and_unload()
        save_final_model(trainer, output_dir)
        return
    adapter = model.peft_config["default"]
    local = Path(base_model).expanduser()
    # A relative folder would not be found from anywhere else: record where it really is.
    adapter.base_model_name_or_path = str(local.resolve()) if local.exists() else base_model
    save_final_model(trainer, output_dir)
    if adapter.task_type == TaskType.SEQ_CLS and trainer.is_world_process_zero():
        classifier = model.get_base_model()
        config = classifier.config
        config.architectures = [classifier.__class__.__name__]
        try:
            config.save_pretrained(output_dir)
        except OSError as error:
            if (cause := write_failure(error, output_dir)) is None:
                raise
            raise UserError(f"saving the classifier's config.json into {output_dir} failed: {cause}; {what_was_kept(output_dir)}.") from None


def what_was_kept(output_dir: str) -> str:
    """After a failed final save: what the user still has, and how to go on."""
    kept = []
    if (Path(output_dir) / FINISHED_MARKER).exists():
        kept.append("the earlier finished run there is unchanged")
    last, _ = newest_complete_checkpoint(output_dir)
    if last:
        kept.append(f"{last} is the last complete checkpoint: once there is room, rerun with --resume_from_checkpoint auto")
    else:
        kept.append("no checkpoint was kept: once there is room, run again")
    return ", and ".join(kept)
