"""Which device a run trains on: an accelerator when there is one, else CPU workers."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch
from transformers import TrainingArguments


def accelerator_available() -> bool:
    return (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or torch.backends.mps.is_available()
    )


def cpu_processes_without_accelerator() -> dict[str, Any]:
    """On a machine without GPU, run as CPU workers: `--use_cpu` by default.

    TrainingArguments refuses `--bf16` unless `use_cpu` is on, and processes started by
    `accelerate launch --multi_gpu` / `torchrun` only train together (DDP over gloo) when
    accelerate is told they are CPU workers; otherwise each trains alone on the whole data and
    all of them write the same run folder. Must run before TrainingArguments is built.
    """
    if accelerator_available():
        return {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    return {"use_cpu": True}


def device_name(args: TrainingArguments) -> str:
    """The device and how many processes use it; on CPU, the torch threads of each process (this
    one's: `accelerate launch` sets OMP_NUM_THREADS for every process, 1 unless told otherwise)."""
    processes = f"x{args.world_size} " + ("process" if args.world_size == 1 else "processes")
    device = args.device
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} {processes}"
    threads = torch.get_num_threads()
    set_by = f", OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else ""
    return (f"{device.type} ({platform.processor() or platform.machine()}, {threads} "
            f"thread{'' if threads == 1 else 's'} per process{set_by}) {processes}")  # fmt: skip
