"""--cache_frozen: the frozen layers run once per text, not once per step and evaluation.

Under `--trainable last_block` (also head, last_blocks:N) the embeddings and the first blocks
never change, so their output for a given token sequence never changes either. Before training
the run computes that output once for every distinct sequence the method will feed the model
(the model in eval mode: no dropout), and keeps it without padding. Each training step and
evaluation then starts at the first trainable block.

How: a forward pre-hook on the model looks up every row of the batch (its real tokens, by the
attention mask) in the cache. When all rows are there, the model's block list is cut to the
trainable blocks for that one call, and a pre-hook on the first trainable block (or on the final
norm, when only the head trains) replaces its input with the cached states, padded as the batch
is. Any other call (a sequence not in the cache, generation with past key values) runs the whole
model as usual, and the hooks are gone before the model is saved.

Under several processes each computes a share of the sequences and all of them gather the whole
cache (computing it all in every process would take as long as in one).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil
import torch
import torch.distributed as dist
from torch import nn
from transformers import PreTrainedModel, TrainingArguments

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.precision import compute_dtype
from hf_finetune.core.model.trainable import TrainablePolicy, final_norm, transformer_blocks
from hf_finetune.core.report.console import progress_bar

CACHE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BUILD_TOKENS_PER_BATCH = 2048  # padded positions per batch while building: similar lengths; larger batches ran slower
DEFAULT_MEMORY_SHARE = 0.5  # of the memory free at start, split between this machine's processes


def check_cache_arguments(run_args) -> None:
    """The --cache_frozen_* flags, before anything loads."""
    if run_args.cache_frozen_dtype not in ("auto", *CACHE_DTYPES):
        raise UserError(
            f"--cache_frozen_dtype: '{run_args.cache_frozen_dtype}' is not a dtype; use auto (the training "
            f"precision), {', '.join(CACHE_DTYPES)}."
        )
    limit = run_args.cache_frozen_max_gb
    if limit is not None and not limit > 0:
        raise UserError(f"--cache_frozen_max_gb: {limit} is not a size; give the most gigabytes the cache may take, e.g. 4.")


@dataclass
class CacheDecision:
    cache: FrozenCache | None
    line: str  # the plan's "frozen cache" line


def plan_frozen_cache(model: PreTrainedModel, sequences: list[list[int]] | None, policy: TrainablePolicy,
                      use_lora: bool, run_args, training_args: TrainingArguments) -> CacheDecision:  # fmt: skip
    """Whether this run caches the frozen layers, and the plan line saying what and how large (or why not)."""
    if not run_args.cache_frozen:
        return CacheDecision(None, "off (--cache_frozen false): every step runs the whole model, dropout included")
    if use_lora:
        return CacheDecision(None, "off: LoRA adapters train inside every block, so no layer's output is fixed")
    if policy.kind == "all":
        return CacheDecision(None, "off: --trainable all trains every layer, so no layer's output is fixed")
    if sequences is None:
        return CacheDecision(None, "off: this method does not support it")
    if sharded_training(training_args):
        return CacheDecision(None, "off: not under FSDP or DeepSpeed, which shard the blocks")
    prefix = FrozenPrefix.find(model)
    if isinstance(prefix, str):
        return CacheDecision(None, f"off: {prefix}")
    dtype = cache_dtype(run_args.cache_frozen_dtype, training_args)
    distinct = {tuple(ids): None for ids in sequences}  # first-seen order, the same in every process
    tokens = sum(len(ids) for ids in distinct)
    size = tokens * prefix.hidden_size * dtype.itemsize
    limit, limit_said = memory_limit(run_args.cache_frozen_max_gb, training_args.world_size)
    what = f"{prefix.describe()}: {len(distinct):,} sequences, {tokens:,} tokens, {gigabytes(size)} {dtype_name(dtype)}"
    if size > limit:
        return CacheDecision(None, f"off: {what} is over the limit of {gigabytes(limit)} ({limit_said}); "
                                   f"every step runs the whole model")  # fmt: skip
    cache = FrozenCache(prefix, list(distinct), dtype)
    return CacheDecision(cache, f"{what} (limit {gigabytes(limit)}), computed once before training")


def sharded_training(training_args: TrainingArguments) -> bool:
    """FSDP or DeepSpeed, from the flags or from what `accelerate launch` exports."""
    launched = any(os.environ.get(f"ACCELERATE_USE_{name}", "").lower() in ("1", "true") for name in ("FSDP", "DEEPSPEED"))
    return bool(training_args.fsdp or training_args.deepspeed or launched)


def cache_dtype(name: str, training_args: TrainingArguments) -> torch.dtype:
    if name != "auto":
        return CACHE_DTYPES[name]
    return compute_dtype(training_args)


def memory_limit(max_gb: float | None, processes: int) -> tuple[int, str]:
    """The most bytes the cache may take in each process, and where that figure comes from."""
    if max_gb is not None:
        return int(max_gb * 1024**3), "--cache_frozen_max_gb"
    share = DEFAULT_MEMORY_SHARE / max(processes, 1)
    return int(psutil.virtual_memory().available * share), (
        f"default: {share:.0%} of the free memory; --cache_frozen_max_gb sets it"
    )


def gigabytes(size: int) -> str:
    return f"{size / 1024**3:.2f} GB" if size >= 1024**3 / 10 else f"{size / 1024**2:.1f} MB"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class FrozenPrefix:
    """Where the frozen part of a model ends: its block list, how many blocks are frozen, and the
    module whose input is the frozen part's output (the first trainable block, or the final norm)."""

    blocks: nn.ModuleList
    owner: nn.Module  # the module holding the block list as an attribute
    attribute: str
    frozen_blocks: int
    entry: nn.Module
    hidden_size: int

    @classmethod
    def find(cls, model: PreTrainedModel) -> FrozenPrefix | str:
        """The frozen prefix, or why there is none to cache."""
        try:
            blocks = transformer_blocks(model)
        except UserError:
            return f"cannot find the transformer blocks of {model.__class__.__name__}"
        name = next(name for name, module in model.named_modules() if module is blocks)
        owner_name, _, attribute = name.rpartition(".")
        trainable = [any(p.requires_grad for p in block.parameters()) for block in blocks]
        frozen_blocks = trainable.index(True) if True in trainable else len(blocks)
        if not all(trainable[frozen_blocks:]):
            return "a frozen block comes after a trainable one"
        norm = final_norm(model)
        entry = blocks[frozen_blocks] if frozen_blocks < len(blocks) else norm
        if entry is None:
            return f"{model.__class__.__name__} has no final norm to start from"
        if frozen_blocks == 0:
            return "the first block trains, so nothing before it is worth caching"
        # Everything that trains must come after the frozen part: later blocks, the final norm, or
        # parameters outside the base model (a class head; an LM head tied to the embeddings is inside).
        later = {id(p) for block in list(blocks)[frozen_blocks:] for p in block.parameters()}
        later |= {id(p) for p in norm.parameters()} if norm is not None else set()
        base = {id(p) for p in model.base_model.parameters()}
        if any(p.requires_grad and id(p) in base and id(p) not in later for p in model.parameters()):
            return "a layer before the first trainable block trains too (e.g. an LM head tied to the embeddings)"
        hidden_size = getattr(model.config, "hidden_size", None) or model.config.n_embd
        return cls(blocks, model.get_submodule(owner_name), attribute, frozen_blocks, entry, hidden_size)

    def describe(self) -> str:
        total = len(self.blocks)
        if self.frozen_blocks == 1:
            return f"the embeddings and block 1 of {total}"
        return f"the embeddings and blocks 1-{self.frozen_blocks} of {total}"


class _Captured(Exception):
    """Stops a forward pass at the first trainable module, carrying its input."""

    def __init__(self, hidden_states: torch.Tensor):
        self.hidden_states = hidden_states


def _hidden_states_argument(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


class FrozenCache:
    """The frozen prefix's output for every distinct sequence, without padding, in one flat tensor."""

    def __init__(self, prefix: FrozenPrefix, sequences: list[tuple[int, ...]], dtype: torch.dtype):
        self.prefix = prefix
        self.sequences = sequences
        self.dtype = dtype
        self.index: dict[tuple[int, ...], tuple[int, int]] = {}  # sequence -> (start, length) in states
        self.states: torch.Tensor | None = None
        self.suffix = nn.ModuleList(list(prefix.blocks)[prefix.frozen_blocks :])
        self.pending: torch.Tensor | None = None
        self.handles: list = []
        self.served = 0  # forward calls that started at the first trainable module
        self.missed = 0  # forward calls with a sequence not in the cache: the whole model ran
        self.build_seconds = 0.0

    # -- building -------------------------------------------------------------------------------

    def build(self, model: nn.Module, device: torch.device, autocast, tokens_per_batch: int = BUILD_TOKENS_PER_BATCH) -> None:
        """Run the frozen prefix once over every sequence (this process's share, then gathered), in
        the run's precision (`autocast`), in batches of similar length of about `tokens_per_batch`."""
        started = time.time()
        rank, processes = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        order = sorted(range(len(self.sequences)), key=lambda i: len(self.sequences[i]))
        shares = [order[r::processes] for r in range(processes)]  # interleaved: every share has all lengths
        mine = self.compute(model, [self.sequences[i] for i in shares[rank]], device, autocast, tokens_per_batch)
        parts = _all_gather(mine, [sum(len(self.sequences[i]) for i in share) for share in shares])
        self.states = torch.cat(parts) if len(parts) > 1 else parts[0]
        start = 0
        for share in shares:
            for i in share:
                length = len(self.sequences[i])
                self.index[self.sequences[i]] = (start, length)
                start += length
        self.build_seconds = time.time() - started

    def compute(self, model: nn.Module, sequences: list[tuple[int, ...]], device, autocast,
                tokens_per_batch: int = BUILD_TOKENS_PER_BATCH) -> torch.Tensor:  # fmt: skip
        """The frozen prefix's output for `sequences` (sorted by length), concatenated without padding
        (on the CPU)."""
        capture = self.prefix.entry.register_forward_pre_hook(
            lambda module, args, kwargs: _raise(_Captured(_hidden_states_argument(args, kwargs))), with_kwargs=True
        )
        was_training = model.training
        model.eval()
        pieces = []
        batches = length_batches(sequences, tokens_per_batch)
        bar = progress_bar(len(sequences), "frozen cache", unit="text", batches=len(batches))
        try:
            with torch.no_grad(), autocast():
                for batch in batches:
                    width = max(len(ids) for ids in batch)
                    input_ids = torch.zeros((len(batch), width), dtype=torch.long)
                    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, ids in enumerate(batch):  # right padding: each text's positions count from 0
                        input_ids[row, : len(ids)] = torch.as_tensor(ids)
                        attention_mask[row, : len(ids)] = 1
                    try:
                        model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)
                    except _Captured as captured:
                        hidden = captured.hidden_states
                    else:
                        raise RuntimeError("the frozen prefix never reached its first trainable module")
                    pieces.append(hidden[attention_mask.to(hidden.device).bool()].to("cpu", self.dtype))
                    bar.update(len(batch))
        finally:
            bar.close()
            capture.remove()
            model.train(was_training)
        return torch.cat(pieces) if pieces else torch.empty((0, self.prefix.hidden_size), dtype=self.dtype)

    # -- serving --------------------------------------------------------------------------------

    def attach(self, model: nn.Module) -> None:
        """Serve every forward call whose rows are all cached from the first trainable module on."""
        self.handles = [
            model.register_forward_pre_hook(self._before_model, with_kwargs=True),
            model.register_forward_hook(self._after_model, always_call=True),
            self.prefix.entry.register_forward_pre_hook(self._before_entry, with_kwargs=True),
        ]

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self._restore_blocks()

    def lookup(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """The cached states of a batch, padded as its attention mask says; None if a row is not cached."""
        if input_ids.dim() != 2:
            return None
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        real_cpu = real.cpu()
        rows = input_ids.cpu().tolist()
        spans = []
        for row, keep in zip(rows, real_cpu.tolist()):
            span = self.index.get(tuple(token for token, kept in zip(row, keep) if kept))
            if span is None:
                return None
            spans.append(span)
        positions = torch.cat([torch.arange(start, start + length) for start, length in spans])
        padded = self.states.new_zeros((*input_ids.shape, self.states.shape[-1]))
        padded[real_cpu] = self.states[positions]
        return padded

    def _before_model(self, module, args, kwargs):
        if kwargs.get("past_key_values") is not None or kwargs.get("inputs_embeds") is not None:
            return None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            return None
        states = self.lookup(input_ids, kwargs.get("attention_mask"))
        if states is None:
            self.missed += 1
            return None
        self.pending = states.to(input_ids.device, non_blocking=True)
        self.prefix.owner._modules[self.prefix.attribute] = self.suffix
        self.served += 1
        return None

    def _before_entry(self, module, args, kwargs):
        if self.pending is None:
            return None
        incoming = _hidden_states_argument(args, kwargs)
        cached = self.pending.to(incoming.dtype)
        self.pending = None
        if args:
            return (cached, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": cached}

    def _after_model(self, module, args, output):
        self._restore_blocks()
        return None

    def _restore_blocks(self) -> None:
        self.pending = None
        self.prefix.owner._modules[self.prefix.attribute] = self.prefix.blocks


def length_batches(sequences: list, tokens_per_batch: int) -> list[list]:
    """`sequences` (sorted by length) cut into batches of about `tokens_per_batch` padded positions."""
    batches, batch = [], []
    for ids in sequences:
        if batch and (len(batch) + 1) * max(len(ids), len(batch[-1])) > tokens_per_batch:
            batches.append(batch)
            batch = []
        batch.append(ids)
    return batches + ([batch] if batch else [])


def _raise(error: Exception):
    raise error


def _all_gather(mine: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Every process's share, in rank order (shares differ in length: padded for the gather)."""
    if len(sizes) == 1:
        return [mine]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    width = max(sizes)
    padded = mine.new_zeros((width, mine.shape[-1]), device=device)
    padded[: len(mine)] = mine.to(device)
    bits = padded.view(torch.uint8)  # raw bytes: every backend gathers them (gloo has no int16, older ones no bfloat16)
    gathered = [torch.empty_like(bits) for _ in sizes]
    dist.all_gather(gathered, bits)
    return [part[:size].view(mine.dtype).to("cpu") for part, size in zip(gathered, sizes)]
