"""The run skeleton: the story of a training run, told once for every method.

A method supplies what is particular to it by subclassing `Method` (method.py); `run(method)`
calls its hooks in the order below. docs/architecture.md shows how to add a method.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from transformers import Trainer, set_seed

from hf_finetune.core.data.leakage import check_leakage
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.device import device_name
from hf_finetune.core.model.flops import HardwareUse, matmul_peak, utilization_line
from hf_finetune.core.model.frozen_cache import check_cache_arguments, plan_frozen_cache
from hf_finetune.core.model.kernels import frozen_weights_cast_once, fuse_activations
from hf_finetune.core.model.precision import compute_dtype, describe_precision, training_autocast
from hf_finetune.core.model.trainable import TrainablePolicy, count_parameters, make_trainable
from hf_finetune.core.report.console import RunLogHandler, logger, messages_in_run_log, print_block, set_log_level
from hf_finetune.core.report.hub import defer_push_to_end, push_run, repo_creation_reported
from hf_finetune.core.run.checkpoints import write_failure
from hf_finetune.core.run.lock import Terminated, release_launch_lock, run_lock
from hf_finetune.core.run.machines import apply_ddp_timeout, check_shared_output_dir, machine_lost, machines_line
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.preflight import guard_output_dir, intervals_plan_line, settle_training_args
from hf_finetune.core.run.progress import use_run_console
from hf_finetune.core.run.saving import save_trained_model
from hf_finetune.core.run.seeds import run_seeds
from hf_finetune.core.run.training import (
    NOT_RESUMING,
    check_checkpoint_fits,
    resolve_resume,
    run_identity,
    train_reliably,
)

__all__ = ["Method", "run"]


def run(method: Method) -> dict:
    """Train, evaluate, save and report one method's run (one per seed with --seeds); returns its results."""
    apply_ddp_timeout(method.training_args)  # on CPU workers too
    if method.run_args.seeds is not None or method.run_args.seeds_vary_split:
        return run_seeds(method, run_one)
    return run_one(method)


def run_one(method: Method) -> dict:
    with machine_loss_reported(method.training_args):
        # One run per output folder, from before anything loads; library messages into its run.log.
        with run_lock(method.training_args) as lock, messages_in_run_log(method.training_args) as log_file:
            check_shared_output_dir(lock, method.training_args)  # every machine sees the same one
            return run_locked(method, log_file)


@contextmanager
def machine_loss_reported(args):
    """A process of the job that died or stopped answering: one sentence on the others, after the
    lock is released (they end at once, or after --ddp_timeout for a machine that hangs)."""
    try:
        yield
    except Exception as error:
        lost = machine_lost(error, args)
        if lost is None:
            raise
        release_launch_lock(args.output_dir)
        raise lost from None


def run_locked(method: Method, log_file: RunLogHandler | None = None) -> dict:
    model_args, run_args, args = method.model_args, method.run_args, method.training_args
    set_log_level(args)
    # Flags: refused before anything loads, then settled in one place; config.yaml holds them.
    resuming = args.resume_from_checkpoint not in NOT_RESUMING
    guard_output_dir(args.output_dir, run_args.overwrite_output_dir, method.series, model_args.model_name_or_path,
                     resuming)  # nor another's folder, nor the model it loads, nor an unfinished run's checkpoints
    method.check_arguments()
    check_cache_arguments(run_args)
    # The run's settings and the method's needs, in one place; precision, trackers and hub checked.
    intervals = settle_training_args(args, run_args.skip_nonfinite_batches, method.required_training_arguments(),
                                     run_args.given_flags)  # fmt: skip
    set_seed(args.seed)  # before any model loads: new weights (a class head) are the same in every run
    config = method.config()  # every value in force, once settled: config.yaml trains this run again
    policy = TrainablePolicy.parse(model_args.trainable)
    checkpoint = resolve_resume(args)  # a bad checkpoint costs seconds

    # Data, tokenizer, model, inputs.
    with args.main_process_first(desc="loading data"):  # the main process downloads
        method.load_data()
    texts = method.split_texts()
    leakage = check_leakage(texts, method.split_labels()) if texts is not None else None
    tokenizer = method.load_tokenizer()
    with args.main_process_first(desc="tokenizing"):  # the main process fills the tokenization cache
        method.tokenize(tokenizer)
    model, what_trains = make_trainable(method.load_model(tokenizer), policy, method.lora_args)
    identity = run_identity(method.description, model)
    check_checkpoint_fits(checkpoint, identity, model, config)  # another run's checkpoint: before its weights load
    fuse_activations(model)  # gelu_new in one kernel: the same function, faster
    with args.main_process_first(desc="encoding"):
        method.encode(tokenizer, model)
    trainable, total = count_parameters(model)
    frozen = plan_frozen_cache(model, method.frozen_cache_sequences(), policy, method.lora_args.use_peft,
                               run_args, args)  # fmt: skip
    peak = matmul_peak(args.device, compute_dtype(args))  # what the run's MFU is measured against
    if args.should_log:
        print_block(
            "plan",
            {
                "method": method.description,
                "model": f"{model_args.model_name_or_path} ({model.__class__.__name__})",
                **method.plan(),
                **({"leakage": leakage.plan_line()} if leakage is not None else {}),
                "trainable": f"{trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%): {what_trains}",
                "frozen cache": frozen.line,
                "device": device_name(args),
                **({"machines": line} if (line := machines_line(args)) else {}),
                "precision": describe_precision(args),
                "peak": peak.line(),
                **intervals_plan_line(intervals, args),
                "output": args.output_dir,
            },
        )

    # Training and the final figures.
    with repo_creation_reported(args):
        trainer = method.build_trainer(model, tokenizer)
    if log_file is not None:
        log_file.start()  # the run is under way (a refusal up to here leaves no file): its log from the start is kept
    use_run_console(trainer, method.console_leaves_out)  # one bar, a line per evaluation; the raw log dicts into run.log
    defer_push_to_end(trainer)
    usage = HardwareUse(trainer, peak)  # model FLOPs and time of the training steps
    models = [trainer.model, getattr(trainer, "ref_model", None)]  # their frozen weights: cast to bf16 once, not per step
    with frozen_layers_cached(frozen.cache, trainer) as cache_results, \
            frozen_weights_cast_once(models, args.device, compute_dtype(args)):  # fmt: skip
        method.before_training(trainer)
        started, cpu_started = time.time(), time.process_time()
        train_result = train_reliably(trainer, checkpoint, run_args.skip_nonfinite_batches, identity, config)
        results = {
            "train_runtime_seconds": round(time.time() - started, 2),
            "train_cpu_seconds": round(time.process_time() - cpu_started, 2),  # this process's: steady on a busy machine
            "train_loss": train_result.training_loss,
            **usage.results(),
            "trainable": what_trains,
            **({"leakage": leakage.to_dict()} if leakage is not None else {}),
        }
        results = method.evaluate(trainer, train_result, results)
    results.update(cache_results)

    # The run folder: model, results, report; the Hub; the summary.
    save_trained_model(trainer, trainer.args.output_dir, model_args.model_name_or_path, method.lora_args)
    if trainer.is_world_process_zero():
        results = method.evaluate_on_main_process(trainer, results)
        with results_write_reported(trainer.args.output_dir):
            method.write_results(trainer, results, config)
    if args.push_to_hub:  # every process: Trainer saves collectively, the main process uploads
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
    try:
        cache.build(trainer.model, args.device, lambda: training_autocast(args))
    except Terminated:
        raise Terminated("while the frozen layers' cache was built, before training began") from None
    logger.info(f"frozen cache: built in {cache.build_seconds:.1f} s")
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
        **({"hardware use": line} if (line := utilization_line(results)) else {}),
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
