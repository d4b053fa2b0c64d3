"""Mixed precision: which one a run uses, and whether this machine can run it well.

The precision comes from `--bf16` / `--fp16` or, when neither is passed, from the accelerate
config's `mixed_precision` (accelerate exports it as ACCELERATE_MIXED_PRECISION, which
`TrainingArguments.mixed_precision` picks up).

On CPU, bf16 autocast is only worth it with native bf16 instructions (x86: AVX512-BF16 or
AMX; Arm: the BF16 extension). Without them PyTorch emulates bf16 and a step is slower than
in fp32, so the run is refused with the reason instead.
"""

from __future__ import annotations

import platform

import torch
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError


def cpu_bf16_instructions() -> str | None:
    """The native bf16 instruction set of this CPU, or None when bf16 would be emulated."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    if platform.machine().lower() in ("arm64", "aarch64") and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "Arm BF16"
    return None


def bf16_autocast_runs_on_cpu() -> bool:
    """A tiny matmul under CPU autocast really computes in bf16."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            product = torch.ones(4, 4) @ torch.ones(4, 4)
    except RuntimeError:
        return False
    return product.dtype == torch.bfloat16 and bool((product == 4).all())


def mixed_precision(args: TrainingArguments) -> str:
    """'bf16', 'fp16' or 'no', whether it came from the flags or the accelerate config."""
    if args.bf16:
        return "bf16"
    if args.fp16:
        return "fp16"
    return getattr(args, "mixed_precision", None) or "no"


def check_precision(args: TrainingArguments) -> None:
    """Refuse a precision this machine cannot run well, with the reason."""
    if args.bf16 and args.fp16:
        raise UserError("--bf16 and --fp16 are both on; choose one.")
    if mixed_precision(args) != "bf16" or args.device.type != "cpu":
        return
    source = "--bf16" if args.bf16 else "mixed_precision: bf16 (accelerate config)"
    if cpu_bf16_instructions() is None:
        raise UserError(
            f"{source}: this CPU ({platform.processor() or platform.machine()}) has no native bf16 instructions "
            f"(AVX512-BF16, AMX or Arm BF16), so bf16 would be emulated and slower than fp32; train in fp32 "
            f"(drop the flag, or set mixed_precision: 'no')."
        )
    if not bf16_autocast_runs_on_cpu():
        raise UserError(f"{source}: PyTorch {torch.__version__} cannot run bf16 autocast on this CPU; train in fp32.")


def describe_precision(args: TrainingArguments) -> str:
    """One line for the printed plan."""
    device = args.device.type
    precision = mixed_precision(args)
    if precision == "bf16":
        where = f"{device}, {cpu_bf16_instructions()}" if device == "cpu" else device
        return f"bf16 mixed precision (autocast on {where}; weights and optimizer in fp32)"
    if precision == "fp16":
        return f"fp16 mixed precision (autocast on {device}, loss scaling; weights and optimizer in fp32)"
    return "fp32"
