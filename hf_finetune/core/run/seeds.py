"""Several seeds: one configuration trained once per seed, and what the seeds agree on.

`--seeds 1,2,3` trains the run's configuration into OUTPUT_DIR/seed-1/, seed-2/, ... (each an
ordinary run folder whose config.yaml is reusable with --config), then writes
OUTPUT_DIR/summary.json and summary.md: each metric's mean, standard deviation, min and max over
the seeds with one line per seed, and the curves of all seeds in one plot. Each seed draws its own
new weights, batch order and, for one-split data, its own split.

OUTPUT_DIR/config.yaml holds the flags (with `seeds`; without `seed`, which --seeds replaces). A
rerun into the same folder, after a crash or with more seeds, keeps the seeds that finished and
trains the others, and is refused if its flags differ. Under `accelerate launch` every process
runs the seeds one after another; the main process writes the summary.
"""

from __future__ import annotations

import copy
import json
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from hf_finetune.core.errors import UserError
from hf_finetune.core.report.console import logger
from hf_finetune.core.report.curves import plot_curves
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.run.series import copied_training_args, series_folder

SUMMARY = "summary.json"
SUMMARY_REPORT = "summary.md"
CONFIG = "config.yaml"
SEED_FOLDER = "seed-{}"
# Flags a rerun may change without changing what the seeds' runs are.
RERUN_MAY_CHANGE = ("seeds", "seed", "resume_from_checkpoint", "overwrite_output_dir", "traceback")
# resume_from_checkpoint values that name no checkpoint (training.resolve_resume reads them).
RESUME_WORDS = (None, "", "false", "False", "no", "auto", "true", "True", "latest")


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3], or one sentence naming --seeds."""
    parts = [part.strip() for part in str(text).split(",")]
    if not all(part.isdigit() for part in parts):
        raise UserError(f"--seeds: '{text}' must be whole numbers separated by commas, e.g. 1,2,3.")
    seeds = [int(part) for part in parts]
    for seed in seeds:
        if seed >= 2**32:
            raise UserError(f"--seeds: {seed} must be between 0 and 2**32 - 1.")
        if seeds.count(seed) > 1:
            raise UserError(f"--seeds: {seed} is given twice; each seed trains once, into its own seed-{seed} folder.")
    return seeds


def seed_folder(output_dir: str | Path, seed: int) -> Path:
    return Path(output_dir) / SEED_FOLDER.format(seed)


def seed_method(method, seed: int):
    """A fresh copy of `method` (its hooks keep what they load on it) that trains with `seed` into seed-N/."""
    args = method.training_args
    seed_args = copied_training_args(
        args,
        seed=seed,
        output_dir=str(seed_folder(args.output_dir, seed)),
        run_name=f"{args.run_name}-seed-{seed}" if args.run_name else None,  # trackers keep the seeds apart
    )
    run_args = replace(method.run_args, seeds=None)
    return copy.deepcopy(method, memo={id(args): seed_args, id(method.run_args): run_args})


def run_seeds(method, run_one: Callable) -> dict:
    """Run `method`'s configuration once per seed of --seeds, then summarise; returns the summary."""
    seeds = parse_seeds(method.run_args.seeds)
    args, overwrite = method.training_args, method.run_args.overwrite_output_dir
    if args.push_to_hub:
        raise UserError("--push_to_hub publishes one model, and --seeds trains one per seed; push a single run.")
    if args.resume_from_checkpoint not in RESUME_WORDS:
        raise UserError(f"--resume_from_checkpoint: with --seeds each seed resumes in its own folder; pass auto, "
                        f"not the checkpoint {args.resume_from_checkpoint}.")  # fmt: skip
    output_dir = Path(args.output_dir)
    main_process = args.process_index == 0
    with series_folder(method) as shared_flags:
        config = {**{key: value for key, value in shared_flags.items() if key != "seed"}, "seeds": ",".join(map(str, seeds))}
        if not overwrite:
            check_same_flags(output_dir, config)
        kept = [seed for seed in seeds if not overwrite and (seed_folder(output_dir, seed) / FINISHED_MARKER).is_file()]
        if main_process:
            atomic_write_text(output_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))
            if len(kept) < len(seeds):  # the summary marks a finished series: not while seeds train
                for name in (SUMMARY, SUMMARY_REPORT):
                    (output_dir / name).unlink(missing_ok=True)
        for number, seed in enumerate(seeds, 1):
            folder = seed_folder(output_dir, seed)
            done = "finished earlier, kept" if seed in kept else "training"
            logger.info(f"=== seed {seed} ({number} of {len(seeds)}): {folder}, {done} ===\n")
            if seed not in kept:
                run_one(seed_method(method, seed))
        # local=False: on several machines, only the main process of the first writes; all others wait.
        with args.main_process_first(local=False, desc="writing the seeds' summary"):
            if main_process:
                summary = write_summary(output_dir, seeds, kept)
                print(f"=== {len(seeds)} seeds (summary: {output_dir / SUMMARY_REPORT}) ===\n\n"
                      f"{metrics_table(summary)}\n", flush=True)  # fmt: skip
            else:
                summary = read_json(output_dir / SUMMARY)
    return summary


def check_same_flags(output_dir: Path, config: dict) -> None:
    """A rerun keeps the finished seeds only if they were trained with these flags."""
    path = output_dir / CONFIG
    if not path.is_file() or not any(output_dir.glob("seed-*")):
        return
    try:
        earlier = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        earlier = None
    if not isinstance(earlier, dict):
        raise UserError(f"--output_dir: {path}, the flags of the seed runs there, is damaged; pass "
                        f"--overwrite_output_dir to train every seed again, or choose another folder.")  # fmt: skip
    for key in dict.fromkeys([*earlier, *config]):
        if key not in RERUN_MAY_CHANGE and earlier.get(key) != config.get(key):
            raise UserError(
                f"--output_dir: {output_dir} holds seed runs trained with other flags ({key}: {earlier.get(key)!r} "
                f"in {path}, {config.get(key)!r} now); pass --overwrite_output_dir to train every seed again, or "
                f"choose another folder."
            )


def final_metrics(results: dict) -> dict[str, float]:
    """The numbers of a finished run's all_results.json (a chat run keeps them in its one method row)."""
    rows = results.get("methods")
    if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict):
        results = rows[0]
    return {key: value for key, value in results.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


def run_history(results: dict) -> list[dict]:
    """The logged points of a finished run's all_results.json (a chat run keeps them per method)."""
    history = results.get("history")
    if isinstance(history, dict):
        history = next(iter(history.values())) if len(history) == 1 else []
    return history if isinstance(history, list) else []


def examples_per_epoch(history: list[dict], metrics: dict) -> int | None:
    """Training examples per epoch, for the curves' top axis: from the history, else the chat row's count."""
    for point in history:
        if point.get("epoch") and "examples_seen" in point:
            return round(point["examples_seen"] / point["epoch"])
    return metrics.get("examples")


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (n - 1; None for one value), min and max."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path} cannot be read ({error.__class__.__name__}); train that run again.") from None


def read_results(folder: Path) -> dict:
    return read_json(folder / FINISHED_MARKER)


def write_summary(output_dir: Path, seeds: list[int], kept: list[int]) -> dict:
    """summary.json, summary.md and the seeds' curves, from the seed folders' all_results.json."""
    results = {seed: read_results(seed_folder(output_dir, seed)) for seed in seeds}
    metrics = {seed: final_metrics(result) for seed, result in results.items()}
    shared = [name for name in metrics[seeds[0]] if all(name in metrics[seed] for seed in seeds)]
    summary = {
        "seeds": seeds,
        "metrics": {name: spread([metrics[seed][name] for seed in seeds]) for name in shared},
        "runs": [
            {"seed": seed, "folder": SEED_FOLDER.format(seed), "kept": seed in kept, "metrics": metrics[seed]}
            for seed in seeds
        ],
    }
    if "label_names" in results[seeds[0]]:
        summary["label_names"] = results[seeds[0]]["label_names"]
    histories = {seed: run_history(result) for seed, result in results.items()}
    plots = plot_seed_curves(output_dir, histories, examples_per_epoch(histories[seeds[0]], metrics[seeds[0]]))
    runs = "\n".join(
        f"- seed {run['seed']}: [{run['folder']}/]({run['folder']}/), "
        + ("finished in an earlier run, kept" if run["kept"] else "trained in this run")
        for run in summary["runs"]
    )
    report = "\n\n".join(
        [
            f"# {len(seeds)} seeds of one configuration",
            (f"The flags are in [{CONFIG}]({CONFIG}); each seed's run folder holds its own report and model. Every "
            "figure is the final one of each seed's all_results.json; std is the sample standard deviation (n - 1)."),
            metrics_table(summary),
            "## Seeds\n\n" + runs,
            "## Curves\n\n" + "\n\n".join(f"![{path.stem}]({path.name})" for path in plots if path.suffix == ".png"),
        ]
    )
    atomic_write_text(output_dir / SUMMARY_REPORT, report + "\n")
    atomic_write_json(output_dir / SUMMARY, summary)  # last: it marks the series finished
    return summary


def metrics_table(summary: dict) -> str:
    seeds = summary["seeds"]
    per_seed = {run["seed"]: run["metrics"] for run in summary["runs"]}
    return markdown_table(
        ["metric", "mean", "std", "min", "max", *(f"seed {seed}" for seed in seeds)],
        [
            [name, figures["mean"], "" if figures["std"] is None else figures["std"], figures["min"], figures["max"],
             *(per_seed[seed][name] for seed in seeds)]
            for name, figures in summary["metrics"].items()
        ],
    )


def plot_seed_curves(output_dir: Path, histories: dict[int, list[dict]], per_epoch: int | None) -> list[Path]:
    """loss.png/.pdf (training and validation loss of every seed) and, for classifiers, accuracy.png/.pdf."""
    points = [
        {"epoch": point["epoch"], **{f"seed {seed} {key}": value for key, value in point.items() if key != "epoch"}}
        for seed, history in histories.items()
        for point in history
        if "epoch" in point
    ]
    top = {"examples_per_epoch": per_epoch, "top_label": "Examples seen"} if per_epoch else {
        "examples_per_epoch": 1, "top_label": "Epochs"}  # fmt: skip
    written = plot_curves(
        points,
        {f"seed {seed} {key}": f"seed {seed} {legend}" for seed in histories
         for key, legend in (("train_loss", "training"), ("eval_validation_loss", "validation"))},
        "Loss",
        output_dir / "loss",
        **top,
    )
    if any(f"seed {seed} eval_validation_accuracy" in point for point in points for seed in histories):
        written += plot_curves(
            points,
            {f"seed {seed} eval_validation_accuracy": f"seed {seed} validation" for seed in histories},
            "Accuracy",
            output_dir / "accuracy",
            **top,
        )
    return written

