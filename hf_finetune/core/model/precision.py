"""Mixed precision: the one a run uses, chosen for the hardware unless the user chose, and whether
this machine can run it well.

Unless told otherwise a run trains in the fastest precision the device computes natively:
- bf16 mixed precision on a CUDA GPU with bf16, and on a CPU with native bf16 instructions (x86:
  AVX512-BF16 or AMX; Arm: the BF16 extension);
- fp16 mixed precision, with loss scaling, on a CUDA GPU without bf16;
- fp32 otherwise (a CPU without them, where PyTorch would emulate bf16 and run slower than fp32).

The user's choice wins: `--bf16`, `--fp16`, `--bf16 false` (fp32), or an accelerate config's
`mixed_precision: bf16|fp16` (accelerate exports it as ACCELERATE_MIXED_PRECISION, which
`TrainingArguments.mixed_precision` picks up; its default `no` chooses nothing). So that a
missing flag can be told from `--bf16 false`, the commands parse both switches with the default
None (`PRECISION_UNSET`); `settle_training_args` then calls `precision_for_hardware`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError

# The parser's defaults for the two switches: None = not given, chosen for the hardware.
PRECISION_UNSET = {"bf16": None, "fp16": None}
# Where the settled TrainingArguments keep why the precision was chosen for them (not a field:
# config.yaml, to_dict() and TRL's configs never see it).
CHOSEN_FOR_HARDWARE = "_precision_chosen_for_hardware"
# And which of the two switches the user gave, for config.yaml (the others stay unset there).
PRECISION_GIVEN = "_precision_given"


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


def cpu_name() -> str:
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class HardwarePrecision:
    precision: str  # "bf16", "fp16" or "no"
    reason: str  # why, for the plan


def hardware_precision(device: torch.device) -> HardwarePrecision:
    """The mixed precision `device` computes natively, and why."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return HardwarePrecision("bf16", f"{name} computes bf16 natively")
        return HardwarePrecision("fp16", f"{name} has no bf16, so fp16 with loss scaling")
    if device.type != "cpu":
        return HardwarePrecision("no", f"no precision check for {device.type} devices yet; --bf16 or --fp16 choose one")
    instructions = cpu_bf16_instructions()
    if instructions is None:
        return HardwarePrecision(
            "no", f"this CPU ({cpu_name()}) has no native bf16 instructions (AVX512-BF16, AMX or Arm BF16): bf16 "
                  f"would be emulated, slower than fp32"  # fmt: skip
        )
    if not bf16_autocast_runs_on_cpu():
        return HardwarePrecision("no", f"PyTorch {torch.__version__} cannot run bf16 autocast on this CPU")
    return HardwarePrecision("bf16", f"this CPU computes bf16 natively ({instructions})")


def precision_for_hardware(args: TrainingArguments) -> dict[str, object]:
    """The TrainingArguments changes that settle --bf16/--fp16 (None: not given): the user's choice
    kept, the hardware's where there is none. For `settle_training_args`."""
    if args.bf16 is not None and args.fp16 is not None:
        return {}  # both said, or settled already (a copy of settled arguments)
    given = {name: value for name, value in (("bf16", args.bf16), ("fp16", args.fp16)) if value is not None}
    from_accelerate = getattr(args, "mixed_precision", "no") in ("bf16", "fp16")
    if any(given.values()) or from_accelerate or given.get("bf16") is False:
        # --bf16 / --fp16 on, the accelerate config's choice, or --bf16 false (fp32): the other switch is off.
        return {"bf16": bool(args.bf16), "fp16": bool(args.fp16)}
    choice = hardware_precision(args.device)
    if choice.precision == "fp16" and given.get("fp16") is False:
        choice = HardwarePrecision("no", f"{choice.reason.split(',')[0]}, and --fp16 false")
    return {
        "bf16": choice.precision == "bf16",
        "fp16": choice.precision == "fp16",
        "mixed_precision": choice.precision,  # what Trainer hands accelerate; __post_init__ set it already
        CHOSEN_FOR_HARDWARE: choice.reason,
        PRECISION_GIVEN: tuple(given),
    }


def chosen_for_hardware(args: TrainingArguments) -> str | None:
    """Why the run's precision was chosen for the hardware, or None when the user chose it."""
    return getattr(args, CHOSEN_FOR_HARDWARE, None)


def as_configured(args: TrainingArguments) -> dict[str, object]:
    """config.yaml keeps the user's choice, not the hardware's: null (chosen for the hardware
    again) where the run chose, so that the file runs the same way on another machine."""
    if chosen_for_hardware(args) is None:
        return {}
    given = getattr(args, PRECISION_GIVEN, ())
    return {name: None for name in PRECISION_UNSET if name not in given}


def mixed_precision(args: TrainingArguments) -> str:
    """'bf16', 'fp16' or 'no', whether it came from the flags or the accelerate config."""
    if args.bf16:
        return "bf16"
    if args.fp16:
        return "fp16"
    return getattr(args, "mixed_precision", None) or "no"


def compute_dtype(args: TrainingArguments) -> torch.dtype:
    """The dtype the run's matmuls compute in."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision(args), torch.float32)


def training_autocast(args: TrainingArguments):
    """The autocast the run's forward passes use (accelerate wraps the model's forward with it once
    training starts; work done before, like the frozen cache's build, enters it here)."""
    dtype = compute_dtype(args)
    return torch.autocast(args.device.type, dtype=dtype, enabled=dtype != torch.float32)


def check_precision(args: TrainingArguments) -> None:
    """Refuse a precision this machine cannot run well, with the reason."""
    if args.bf16 and args.fp16:
        raise UserError("--bf16 and --fp16 are both on; choose one.")
    if mixed_precision(args) != "bf16" or args.device.type != "cpu" or chosen_for_hardware(args):
        return
    source = "--bf16" if args.bf16 else "mixed_precision: bf16 (accelerate config)"
    if cpu_bf16_instructions() is None:
        raise UserError(
            f"{source}: this CPU ({cpu_name()}) has no native bf16 instructions (AVX512-BF16, AMX or Arm BF16), "
            f"so bf16 would be emulated and slower than fp32; train in fp32 (--bf16 false, or mixed_precision: "
            f"'no' without the flag)."
        )
    if not bf16_autocast_runs_on_cpu():
        raise UserError(f"{source}: PyTorch {torch.__version__} cannot run bf16 autocast on this CPU; train in fp32.")


def describe_precision(args: TrainingArguments) -> str:
    """One line for the printed plan: the precision, and who chose it."""
    device = args.device.type
    precision = mixed_precision(args)
    if precision == "bf16":
        where = f"{device}, {cpu_bf16_instructions()}" if device == "cpu" else device
        line = f"bf16 mixed precision (autocast on {where}; weights and optimizer in fp32)"
    elif precision == "fp16":
        line = f"fp16 mixed precision (autocast on {device}, loss scaling; weights and optimizer in fp32)"
    else:
        line = "fp32"
    reason = chosen_for_hardware(args)
    if reason is not None:
        return f"{line}, chosen for this machine: {reason}" + (" (--bf16 false: fp32)" if precision != "no" else "")
    if args.bf16:
        return f"{line} (--bf16)"
    if args.fp16:
        return f"{line} (--fp16)"
    if precision != "no":
        return f"{line} (mixed_precision: {precision} in the accelerate config)"
    return f"{line} (--bf16 false)"
