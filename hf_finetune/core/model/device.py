"""Which device a run trains on: an accelerator when there is one, else CPU workers."""

from __future__ import annotations

import os
from typing import Any


def accelerator_available() -> bool:
    import torch

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
