"""How much of the machine a run uses: the model FLOPs of its training steps, counted as they run,
over the time of those steps and the device's matmul peak at the run's precision: the model FLOPs
utilization (MFU, 0-1).

Counted: the matrix multiplications of forward and backward (2 FLOPs per multiply-add), at the
real (non-padding) tokens of each batch:
- every linear layer (nn.Linear, GPT-2's Conv1D; LoRA's adapters too): 2 x rows x in x out forward;
  backward the same again for the input's gradient when its input needs one, and again for the
  weight's gradient when the weight trains. A frozen block before the first trainable one so has no
  backward at all, a frozen block after one only the input's gradient, and a block the frozen cache
  serves is not run, so costs nothing;
- attention's two products (scores and weighted values), 2 x 2 x length^2 x width per sequence and
  block forward, twice that backward when the block's input or weights need gradients;
- the LM head where it runs: at every position, or only at the targets (`logits_to_keep`).
Not counted: padding, element-wise work (norms, activations, softmax), the optimizer, a
recomputation of checkpointed activations (hardware work, not model work), and forward passes
outside the training steps (evaluation, the frozen cache's build, precomputed reference scores).

The peak is the fastest large matmul the device runs in the run's compute dtype: for known GPUs the
vendor's dense figure, otherwise measured here (a second or so, cached per machine).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import TrainerCallback
from transformers.pytorch_utils import Conv1D

from hf_finetune.core.model.trainable import transformer_blocks

# -- counting ---------------------------------------------------------------------------------


def linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a layer that multiplies its input by a weight matrix."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.nf
    return None


def in_backward() -> bool:
    """Inside autograd's backward pass (a checkpointed block recomputing its forward)."""
    return torch._C._current_graph_task_id() != -1


class FlopCounter:
    """Counts the model FLOPs of the forward passes made while `counting` is on, with their
    backward passes, by hooks on the linear layers and the transformer blocks.

    A layer's hook knows its shapes but not how many of the batch's positions are padding; it adds
    its FLOPs per real token (or per squared sequence length, for attention) to the current batch's
    coefficients, and each batch is folded in with its attention mask's counts on the mask's own
    device: no wait for an accelerator in any step."""

    def __init__(self):
        self.counting = False
        self.handles: list = []
        self.folded: torch.Tensor | float = 0.0  # FLOPs of the batches folded in
        self.tokens: torch.Tensor | float = 0.0  # their real tokens
        self.absolute = 0.0  # FLOPs of layers that ran on gathered rows (the LM head at the targets)
        self.batch: tuple | None = None  # (input shape, attention mask or None) of the current batch
        self.per_token = 0.0  # the current batch's FLOPs per real token
        self.per_squared_length = 0.0  # and per squared sequence length (attention)

    @property
    def flops(self) -> float:
        self._fold()
        return float(self.folded) + self.absolute

    @property
    def real_tokens(self) -> int:
        """Real tokens of the forward passes counted (a DPO step's chosen and rejected sequences both)."""
        self._fold()
        return int(self.tokens)

    def attach(self, model: nn.Module) -> FlopCounter:
        self.handles.append(model.register_forward_pre_hook(self._batch_starts, with_kwargs=True))
        for module in model.modules():
            if linear_shape(module) is not None:
                self.handles.append(module.register_forward_hook(self._linear))
        try:
            blocks = transformer_blocks(model)
        except Exception:  # a model without a block list: its linear layers are still counted
            blocks = []
        for block in blocks:
            self.handles.append(block.register_forward_pre_hook(self._attention, with_kwargs=True))
        return self

    def detach(self) -> None:
        self._fold()
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _active(self) -> bool:
        return self.counting and not in_backward()

    def _fold(self) -> None:
        if self.batch is None:
            return
        shape, mask = self.batch
        if mask is None:
            tokens, squared = shape[0] * shape[1], shape[0] * shape[1] ** 2
        else:
            lengths = mask.sum(dim=1, dtype=torch.float64 if mask.device.type != "mps" else torch.float32)
            tokens, squared = lengths.sum(), (lengths * lengths).sum()
        self.folded = self.folded + self.per_token * tokens + self.per_squared_length * squared
        self.tokens = self.tokens + tokens
        self.batch, self.per_token, self.per_squared_length = None, 0.0, 0.0

    def _batch_starts(self, module, args, kwargs):
        if not self._active():
            return None
        self._fold()
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2:
            mask = kwargs.get("attention_mask")
            self.batch = (tuple(input_ids.shape), mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None)
        return None

    def _backward_factor(self, hidden: torch.Tensor, weights_train: bool) -> int:
        """Backward passes of a matmul: one for its input's gradient, one for its weight's."""
        if not torch.is_grad_enabled():
            return 0
        return int(hidden.requires_grad) + int(weights_train)

    def _batch_shaped(self, hidden: torch.Tensor) -> bool:
        return self.batch is not None and hidden.dim() >= 3 and tuple(hidden.shape[:2]) == self.batch[0]

    def _linear(self, module, args, output):
        if not self._active() or not args:
            return None
        hidden = args[0]
        width, out = linear_shape(module)
        per_row = 2 * width * out * (1 + self._backward_factor(hidden, module.weight.requires_grad))
        if self._batch_shaped(hidden):  # (batch, positions, ...): the real tokens count
            self.per_token += per_row * (hidden.numel() // (width * hidden.shape[0] * hidden.shape[1]))
        else:  # gathered rows (the LM head at the targets): every row is real
            self.absolute += per_row * (hidden.numel() // width)
        return None

    def _attention(self, module, args, kwargs):
        if not self._active():
            return None
        hidden = args[0] if args else kwargs.get("hidden_states")
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            return None
        batch, positions, width = hidden.shape
        trains = any(p.requires_grad for p in module.parameters())
        # scores and weighted values: 2 products x 2 FLOPs x length^2 x width; backward twice that
        per_squared = 4 * width * (1 + (2 if torch.is_grad_enabled() and (hidden.requires_grad or trains) else 0))
        if self._batch_shaped(hidden):
            self.per_squared_length += per_squared
        else:
            self.absolute += per_squared * batch * positions**2
        return None


class StepClock(TrainerCallback):
    """The time inside the training steps (forward, backward, clipping, optimizer step), and the FLOP
    counter switched on for them alone: evaluation and saving run between steps."""

    def __init__(self, counter: FlopCounter, device: torch.device):
        self.counter = counter
        self.cuda = device.type == "cuda"
        self.seconds = 0.0
        self.steps = 0
        self.started: float | None = None
        self.events: list = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.counter.counting = True
        if self.cuda:  # events: no wait for the device in every step
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events.append([event, None])
        else:
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.counter.counting = False
        self.steps += 1
        if self.cuda and self.events and self.events[-1][1] is None:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events[-1][1] = event
        elif self.started is not None:
            self.seconds += time.perf_counter() - self.started
            self.started = None

    def total_seconds(self) -> float:
        if self.cuda and self.events:
            torch.cuda.synchronize()
            self.seconds += sum(begin.elapsed_time(end) / 1000 for begin, end in self.events if end is not None)
            self.events = []
        return self.seconds


# -- the peak ---------------------------------------------------------------------------------

# Vendors' dense peaks (no sparsity), FLOP/s, by compute dtype: name fragment -> {dtype: peak}.
# fp32 is full fp32 (PyTorch leaves TF32 off for matmuls unless told).
GPU_PEAKS = {
    "H200": {"bf16": 989.4e12, "fp16": 989.4e12, "fp32": 66.9e12},
    "H100 SXM": {"bf16": 989.4e12, "fp16": 989.4e12, "fp32": 66.9e12},
    "H100 80GB HBM3": {"bf16": 989.4e12, "fp16": 989.4e12, "fp32": 66.9e12},  # the SXM part's CUDA name
    "H100 PCIe": {"bf16": 756.5e12, "fp16": 756.5e12, "fp32": 51.2e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
}
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


@dataclass
class Peak:
    flops_per_second: float
    dtype: str  # bf16, fp16, fp32
    source: str  # how it was found, for the plan

    def line(self) -> str:
        return f"{format_flops(self.flops_per_second)}/s {self.dtype} matmul ({self.source})"


def format_flops(flops: float) -> str:
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if flops >= size:
            return f"{flops / size:,.1f} {unit}"
    return f"{flops / 1e6:,.1f} MFLOP"


def peak_cache_path() -> Path:
    root = os.environ.get("HF_FINETUNE_CACHE") or Path.home() / ".cache" / "hf_finetune"
    return Path(root) / "matmul_peak.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def measure_matmul(device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 0.3) -> float:
    """The best FLOP/s of a size x size matmul in `dtype` on `device`, over about `seconds`."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # warm-up: kernels chosen, pages touched
    sync()
    best, spent, runs = 0.0, 0.0, 0
    while spent < seconds or runs < 3:
        started = time.perf_counter()
        a @ b
        sync()
        took = time.perf_counter() - started
        best, spent, runs = max(best, 2 * size**3 / took), spent + took, runs + 1
    return best


def matmul_peak(device: torch.device, dtype: torch.dtype) -> Peak:
    """The device's matmul peak in `dtype`: a vendor figure for known GPUs, else measured once per
    machine, thread count and PyTorch version (measured again when the last measurement saw a
    loaded machine; the best one is kept)."""
    name = DTYPE_NAMES.get(dtype, str(dtype))
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        for fragment, peaks in GPU_PEAKS.items():
            if fragment in gpu and name in peaks:
                return Peak(peaks[name], name, f"{gpu}: the vendor's dense figure")
        where = gpu
    else:
        threads = torch.get_num_threads()
        where = f"{cpu_model()}, {threads} thread{'s' if threads > 1 else ''}"
    key = f"{where} | {name} | torch {torch.__version__}"
    path = peak_cache_path()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(key) if isinstance(cached, dict) else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = load >= 0.5 * (os.cpu_count() or 1) if device.type == "cpu" else False
    if isinstance(entry, dict) and isinstance(entry.get("flops"), (int, float)):
        # Measured again only when the last measurement saw a busier machine than now.
        if not entry.get("busy") or busy:
            return Peak(float(entry["flops"]), name, f"measured on {where}, cached in {path}")
    measured = measure_matmul(device, dtype)
    best = max(measured, float(entry["flops"])) if isinstance(entry, dict) and "flops" in entry else measured
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cached = cached if isinstance(cached, dict) else {}
        cached[key] = {"flops": best, "busy": busy, "load": round(load, 2)}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(cached, indent=1))
        temporary.replace(path)
    except OSError:
        pass  # a read-only home: measured again next time
    return Peak(best, name, f"measured on {where}" + (f" at load {load:.1f}: measured again when quieter" if busy else ""))


# -- a run's use of the machine ---------------------------------------------------------------


class HardwareUse:
    """The FLOP counter and step clock of one run's training, and the figures for all_results.json."""

    def __init__(self, trainer, peak: Peak):
        self.peak = peak
        self.counter = FlopCounter()
        for model in (trainer.model, getattr(trainer, "ref_model", None)):
            if isinstance(model, nn.Module):
                self.counter.attach(model)
        self.clock = StepClock(self.counter, trainer.args.device)
        trainer.add_callback(self.clock)

    def results(self) -> dict[str, object]:
        """Figures of the training steps; call once training has ended (detaches the hooks)."""
        self.counter.detach()
        seconds = self.clock.total_seconds()
        flops = self.counter.flops
        utilization = flops / (seconds * self.peak.flops_per_second) if seconds > 0 else None
        return {
            "model_flops": int(flops),
            "training_tokens": self.counter.real_tokens,
            "training_step_seconds": round(seconds, 3),
            "training_steps_timed": self.clock.steps,
            "peak_flops_per_second": self.peak.flops_per_second,
            "peak_dtype": self.peak.dtype,
            "model_flops_utilization": float(f"{utilization:.4g}") if utilization is not None else None,
        }


def utilization_line(results: dict) -> str | None:
    """The summary's line: the share of the peak the training steps used."""
    utilization = results.get("model_flops_utilization")
    if utilization is None:
        return None
    return (f"{utilization:.1%} of the {results['peak_dtype']} matmul peak "
            f"({format_flops(results['peak_flops_per_second'])}/s) in {results['training_steps_timed']} training "
            f"steps ({results['training_step_seconds']:.1f} s, {results['model_flops']:.3g} model FLOPs)")  # fmt: skip
