"""A series: several runs of one configuration, each into a subfolder of the output folder, and one
summary of them all (--seeds: one run per seed; the chat method's --compare: one per loss method)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace

from transformers import TrainingArguments

from hf_finetune.core.report.console import set_log_level
from hf_finetune.core.run.lock import run_lock
from hf_finetune.core.run.ownership import mark_series
from hf_finetune.core.run.preflight import guard_series_dir, settle_training_args


@contextmanager
def series_folder(method, kind: str, runs: list[str]) -> Iterator[dict]:
    """The series' folder (`kind`: "seeds" or "chat --compare"; `runs`: its runs' folder names),
    locked for the whole series (each run also locks its own subfolder), refused when another command
    or series owns it, and marked as the series' before anything is written; yields the flags the
    runs share, checked once, here."""
    args = method.training_args
    set_log_level(args)
    with run_lock(args):
        overwrite, model = method.run_args.overwrite_output_dir, method.model_args.model_name_or_path
        guard_series_dir(args.output_dir, overwrite, kind, model)
        config = series_config(method)
        if args.process_index == 0:
            mark_series(args.output_dir, kind, runs)
        yield config


def series_config(method) -> dict:
    """The flags each run's config.yaml holds, found as each run finds them (on a copy: settling
    changes TrainingArguments); a flag that cannot work is refused here, once."""
    args = method.training_args
    copy_of_method = copy.deepcopy(method, memo={id(args): copied_training_args(args)})
    copy_of_method.check_arguments()
    settle_training_args(copy_of_method.training_args, copy_of_method.run_args.skip_nonfinite_batches,
                         copy_of_method.required_training_arguments(), copy_of_method.run_args.given_flags)  # fmt: skip
    return copy_of_method.config()


def copied_training_args(args: TrainingArguments, **changes) -> TrainingArguments:
    """`args` with `changes`. `replace` runs __post_init__ again, which keeps the values it already
    normalised (report_to, the strategies, the checkpointing aliases); every value is a copy, so that
    no run of the series changes another's (Trainer pops from accelerator_config)."""
    values = {item.name: copy.deepcopy(getattr(args, item.name)) for item in fields(args) if item.init}
    return replace(args, **{**values, **changes})
