"""The run skeleton: the story of a training run, told once for every method.

    lock the output folder (run_lock.py) -> preflight (output folder, flags, hub, the method's
    own checks) -> config snapshot -> the checkpoint to resume from -> data -> tokenizer -> model
    -> LoRA or freezing policy -> encode -> plan -> Trainer -> train_reliably -> evaluate -> save
    -> results -> push -> summary

A method supplies what is particular to it by subclassing `Method`; `run(method)` calls its
hooks in that order. docs/architecture.md shows how to add a method.
"""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments

from hf_finetune.core.run.checkpoints import write_failure
from hf_finetune.core.arguments import ModelArguments, RunArguments
from hf_finetune.core.config_file import config_snapshot
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.frozen_cache import check_cache_arguments, plan_frozen_cache
from hf_finetune.core.report.hub import defer_push_to_end, prepare_hub_push, push_run, repo_creation_reported
from hf_finetune.core.data.leakage import check_leakage
from hf_finetune.core.model.lora import LoraArguments, apply_lora, describe_lora
from hf_finetune.core.model.loading import (
    TrainablePolicy,
    apply_causal_lm_policy,
    apply_trainable_policy,
    count_parameters,
    is_sequence_classifier,
    load_causal_lm,
    load_tokenizer,
)
from hf_finetune.core.model.precision import describe_precision
from hf_finetune.core.run.preflight import guard_output_dir, prepare_training_args
from hf_finetune.core.run.lock import run_lock
from hf_finetune.core.run.saving import save_trained_model
from hf_finetune.core.run.seeds import run_seeds
from hf_finetune.core.run.training import resolve_resume, train_reliably


class Method:
    """The parts of a training run that are particular to one method.

    The skeleton calls each hook once, in the order they are listed here. Hooks that load or
    prepare keep what they make on `self` for the later ones.
    """

    description = ""  # the plan's "method" line

    def __init__(
        self,
        model_args: ModelArguments,
        run_args: RunArguments,
        training_args: TrainingArguments,
        lora_args: LoraArguments | None,
        options: tuple = (),
    ):
        self.model_args = model_args
        self.run_args = run_args
        self.training_args = training_args
        self.lora_args = lora_args or LoraArguments()
        self.options = options  # the method's own argument dataclasses, saved in config.yaml
        self._tokenizer = None

    def check_arguments(self) -> None:
        """Refuse flags that cannot work for this method, before anything loads."""

    def config(self) -> dict:
        """The flags of the run, for config.yaml (reusable with --config)."""
        return config_snapshot(self.model_args, *self.options, self.training_args, self.lora_args)

    def load_data(self) -> None:
        """Load and check the data (the main process first: it downloads), before any model loads."""
        raise NotImplementedError

    def load_tokenizer(self):
        """The model's tokenizer (pad token set, right padding for training), loaded once per run:
        a hook that needs it early (e.g. data written with the tokenizer's special tokens) gets the
        same object the skeleton uses afterwards."""
        if self._tokenizer is None:
            model_args = self.model_args
            self._tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
        return self._tokenizer

    def load_model(self, tokenizer) -> PreTrainedModel:
        return load_causal_lm(self.model_args.model_name_or_path, tokenizer, self.model_args.trust_remote_code)

    def encode(self, tokenizer, model) -> None:
        """Turn the data into model inputs (the main process first: it fills the tokenization cache)."""
        raise NotImplementedError

    def frozen_cache_sequences(self) -> list[list[int]] | None:
        """After `encode`: every token sequence training and evaluation will feed the model, for
        --cache_frozen (the frozen layers' output of each is computed once); None: not supported."""
        return None

    def plan(self) -> dict[str, object]:
        """Lines of the plan printed before training: data, sizes, lengths."""
        raise NotImplementedError

    def build_trainer(self, model, tokenizer) -> Trainer:
        raise NotImplementedError

    def before_training(self, trainer: Trainer) -> None:
        """E.g. measure the untrained model."""

    def evaluate(self, trainer: Trainer, train_result, results: dict) -> dict:
        """Every process: the final figures, added to `results` (training time and loss, what trained)."""
        raise NotImplementedError

    def write_results(self, trainer: Trainer, results: dict, config: dict) -> None:
        """The main process, after the model is saved: the run folder's files, all_results.json last."""
        raise NotImplementedError

    def card(self, trainer: Trainer, results: dict) -> str:
        """The model card pushed with --push_to_hub (the main process only)."""
        raise NotImplementedError

    def split_texts(self) -> dict[str, list[str]] | None:
        """After `load_data`: the texts of each split (train, validation, test) that the leakage check
        compares, as a person would read them; None: this method's data has no texts to compare."""
        return None

    def split_labels(self) -> dict[str, list[str]] | None:
        """After `load_data`: the class name of each text of `split_texts()` (classifiers), so that the
        leakage check counts leaked texts per class; None: the texts have no classes."""
        return None

    def headline(self, results: dict) -> dict[str, str]:
        """The figures the run's closing summary leads with (e.g. test accuracy), read from `results`."""
        return {}

    def report_path(self) -> Path | None:
        """The report a person reads first, named in the closing summary (None: this run writes none)."""
        return Path(self.training_args.output_dir) / "report.md"


def run(method: Method) -> dict:
    """Train, evaluate, save and report one method's run (one per seed with --seeds); returns its results."""
    if method.run_args.seeds:
        return run_seeds(method, run_one)
    return run_one(method)


def run_one(method: Method) -> dict:
    with run_lock(method.training_args):  # one run per output folder, from before anything loads
        return run_locked(method)


def run_locked(method: Method) -> dict:
    model_args, training_args = method.model_args, method.training_args
    guard_output_dir(training_args.output_dir, method.run_args.overwrite_output_dir)
    prepare_training_args(training_args)
    prepare_hub_push(training_args)
    method.check_arguments()
    check_cache_arguments(method.run_args)
    # Before the Trainer exists: building the reference TrainingArguments resets accelerate's state.
    config = method.config()
    policy = TrainablePolicy.parse(model_args.trainable)
    training_args.resume_from_checkpoint = resolve_resume(training_args)  # a bad checkpoint costs seconds

    with training_args.main_process_first(desc="loading data"):
        method.load_data()
    texts = method.split_texts()
    leakage = check_leakage(texts, method.split_labels()) if texts is not None else None
    tokenizer = method.load_tokenizer()
    model, what_trains = make_trainable(method.load_model(tokenizer), policy, method.lora_args)
    with training_args.main_process_first(desc="tokenizing"):
        method.encode(tokenizer, model)
    trainable, total = count_parameters(model)
    frozen = plan_frozen_cache(model, method.frozen_cache_sequences(), policy, method.lora_args.use_peft,
                               method.run_args, training_args)  # fmt: skip
    print_plan(
        {
            "method": method.description,
            "model": f"{model_args.model_name_or_path} ({model.__class__.__name__})",
            **method.plan(),
            **({"leakage": leakage.plan_line()} if leakage is not None else {}),
            "trainable": f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%): {what_trains}",
            "frozen cache": frozen.line,
            "device": device_name(training_args),
            "precision": describe_precision(training_args),
            "output": training_args.output_dir,
        },
        training_args,
    )

    with repo_creation_reported(training_args):
        trainer = method.build_trainer(model, tokenizer)
    defer_push_to_end(trainer)
    with frozen_layers_cached(frozen.cache, trainer) as cache_results:
        method.before_training(trainer)
        started, cpu_started = time.time(), time.process_time()
        train_result = train_reliably(trainer, trainer.args, method.run_args.skip_nonfinite_batches)
        results = {
            "train_runtime_seconds": round(time.time() - started, 2),
            "train_cpu_seconds": round(time.process_time() - cpu_started, 2),  # this process's: steady on a busy machine
            "train_loss": train_result.training_loss,
            "trainable": what_trains,
            **({"leakage": leakage.to_dict()} if leakage is not None else {}),
        }
        results = method.evaluate(trainer, train_result, results)
    results.update(cache_results)
    save_trained_model(trainer, trainer.args.output_dir, model_args.model_name_or_path, method.lora_args)

    if trainer.is_world_process_zero():
        with results_write_reported(trainer.args.output_dir):
            method.write_results(trainer, results, config)
    if training_args.push_to_hub:  # every process: Trainer saves collectively, the main process uploads
        push_run(trainer, method.card(trainer, results) if trainer.is_world_process_zero() else "")
    if trainer.is_world_process_zero():
        print_block("summary", summary_lines(method, results))
    return results


@contextmanager
def frozen_layers_cached(cache, trainer: Trainer):
    """Build the frozen layers' cache (--cache_frozen) and serve training and evaluation from it;
    the model is whole again afterwards, for saving. Yields the figures for all_results.json."""
    if cache is None:
        yield {"frozen_cache": False}
        return
    args = trainer.args
    cache.build(trainer.model, args.device, args.per_device_eval_batch_size, trainer.autocast_smart_context_manager)
    if args.should_log:
        print(f"frozen cache: built in {cache.build_seconds:.1f} s", flush=True)
    cache.attach(trainer.model)
    figures = {"frozen_cache": True, "frozen_cache_build_seconds": round(cache.build_seconds, 2)}
    try:
        yield figures
    finally:
        cache.detach()
    # Forward calls served from the cache, and those that ran the whole model (a sequence the
    # method did not list): the second should be 0.
    figures.update(frozen_cache_served_calls=cache.served, frozen_cache_missed_calls=cache.missed)


def summary_lines(method: Method, results: dict) -> dict[str, object]:
    """What a finished run found and where it is: the headline figures, training time, report, model."""
    report = method.report_path()
    return {
        **method.headline(results),
        "training time": f"{results['train_runtime_seconds']:.1f} s (mean training loss {results['train_loss']:.4f})",
        **({"report": report} if report is not None and report.is_file() else {}),
        "model": method.training_args.output_dir,
    }


@contextmanager
def results_write_reported(output_dir: str):
    """A disk that fills up while the report is written: one sentence, the saved model kept."""
    try:
        yield
    except Exception as error:
        cause = write_failure(error, output_dir)
        if cause is None:
            raise
        raise UserError(
            f"writing the results into {output_dir} failed: {cause}; the trained model is saved there, but the run "
            f"is not marked finished: once there is room, run it again."
        ) from None


def make_trainable(model: PreTrainedModel, policy: TrainablePolicy, lora_args: LoraArguments):
    """LoRA adapters, or the `--trainable` policy; returns the model to train and what trains.

    A class head follows the policy as it is; a causal LM keeps a tied LM head frozen under
    'last_block(s)' (see modeling.apply_causal_lm_policy)."""
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        what_trains = describe_lora(model)
    elif is_sequence_classifier(model):
        apply_trainable_policy(model, policy)
        what_trains = policy.describe()
    else:
        what_trains = apply_causal_lm_policy(model, policy)
    model.config.use_cache = False  # no generation while training; checkpointing needs it off
    if count_parameters(model)[0] == 0:
        raise UserError(f"--trainable: '{policy.text}' leaves no parameter to train in this model.")
    return model, what_trains


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


def print_plan(lines: dict[str, object], args: TrainingArguments) -> None:
    if args.should_log:
        print_block("plan", lines)


def print_block(title: str, lines: dict[str, object]) -> None:
    width = max(len(key) for key in lines)
    print(f"{title}:")
    for key, value in lines.items():
        print(f"  {key.ljust(width)}  {value}")
    print(flush=True)
