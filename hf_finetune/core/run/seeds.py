"""Several seeds: one configuration trained once per seed, and what the seeds agree on.

`--seeds 1,2,3` trains the run's configuration into OUTPUT_DIR/seed-1/, seed-2/, ... (each an
ordinary run folder whose config.yaml is reusable with --config), then writes
OUTPUT_DIR/summary.json and summary.md: each metric's mean, standard deviation, min and max over
the seeds with one line per seed, and the curves of all seeds in one plot. Each seed draws its own
new weights, batch order and dropout on ONE data split: a method whose split is drawn at random
(the classifiers' `--split_seed`) cuts it with `--split_seed`, or `--seed` when that is unset, for
every seed, so that the spread is the training's alone and every seed is tested on the same texts.
`--seeds_vary_split` cuts each seed's split with the seed itself, for the spread of both.

OUTPUT_DIR/config.yaml holds the flags (with `seeds` and the split seed; without `seed`, which
--seeds replaces). A rerun into the same folder, after a crash or with more seeds, keeps each
seed whose all_results.json is whole and whose own config.yaml has the flags it would be trained
with now; a seed whose results are damaged trains again; other flags are refused. Under
`accelerate launch` every process runs the seeds one after another; the main process writes the summary.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from hf_finetune.core.config_file import NOT_SNAPSHOT, with_training_defaults
from hf_finetune.core.errors import UserError
from hf_finetune.core.report.console import logger
from hf_finetune.core.report.curves import plot_curves
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.report.results import figures, read_json
from hf_finetune.core.run.ownership import CONFIG, SERIES_MARKER, SUMMARY, read_json_object
from hf_finetune.core.run.series import copied_training_args, series_config, series_folder

SUMMARY_REPORT = "summary.md"
SEED_FOLDER = "seed-{}"
# Flags a rerun may change without changing what the seeds' runs are (older config.yaml files kept some).
RERUN_MAY_CHANGE = frozenset({"seeds", "seeds_vary_split", "traceback", "run_name", *NOT_SNAPSHOT})
# resume_from_checkpoint values that name no checkpoint (training.resolve_resume reads them).
RESUME_WORDS = (None, "", "false", "False", "no", "auto", "true", "True", "latest")


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3], or one sentence naming --seeds."""
    parts = [part.strip() for part in str(text).split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
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


def split_options(method):
    """The method's argument dataclass with `split_seed` (None: its data split draws nothing at random)."""
    return next((options for options in method.options if hasattr(options, "split_seed")), None)


def seed_method(method, seed: int, split_seed: int | None, overwrite: bool = False):
    """A fresh copy of `method` (its hooks keep what they load on it) that trains with `seed` into
    seed-N/, its split cut with `split_seed`; a run of the series in `method.training_args.output_dir`."""
    args = method.training_args
    seed_args = copied_training_args(
        args,
        seed=seed,
        output_dir=str(seed_folder(args.output_dir, seed)),
        run_name=f"{args.run_name}-seed-{seed}" if args.run_name else None,  # trackers keep the seeds apart
    )
    run_args = replace(method.run_args, seeds=None, seeds_vary_split=False,
                       overwrite_output_dir=method.run_args.overwrite_output_dir or overwrite)  # fmt: skip
    copied = copy.deepcopy(method, memo={id(args): seed_args, id(method.run_args): run_args})
    if split_seed is not None:
        split_options(copied).split_seed = split_seed
    copied.series = Path(args.output_dir)
    return copied


def run_seeds(method, run_one: Callable) -> dict:
    """Run `method`'s configuration once per seed of --seeds, then summarise; returns the summary."""
    run_args = method.run_args
    if run_args.seeds is None:
        raise UserError("--seeds_vary_split varies the data split between the runs of --seeds; add --seeds 1,2,3.")
    seeds = parse_seeds(run_args.seeds)
    args, overwrite = method.training_args, run_args.overwrite_output_dir
    if args.push_to_hub:
        raise UserError("--push_to_hub publishes one model, and --seeds trains one per seed; push a single run.")
    if args.resume_from_checkpoint not in RESUME_WORDS:
        raise UserError(f"--resume_from_checkpoint: with --seeds each seed resumes in its own folder; pass auto, "
                        f"not the checkpoint {args.resume_from_checkpoint}.")  # fmt: skip
    fixed_split_seed = series_split_seed(method)
    output_dir = Path(args.output_dir)
    check_keeps_the_series_seeds(output_dir, seeds, overwrite)
    main_process = args.process_index == 0
    with series_folder(method, "seeds", [SEED_FOLDER.format(seed) for seed in seeds]) as shared_flags:
        config = {**{key: value for key, value in shared_flags.items() if key != "seed"}, "seeds": ",".join(map(str, seeds))}
        if split_options(method) is not None:
            config.update(split_seed=fixed_split_seed, seeds_vary_split=run_args.seeds_vary_split)
        split_seeds = {seed: seed if run_args.seeds_vary_split else fixed_split_seed for seed in seeds}
        if not overwrite and any(output_dir.glob("seed-*")):
            check_same_flags(output_dir, config, series=True)
        kept, damaged = [], []
        for seed in seeds:
            folder = seed_folder(output_dir, seed)
            if overwrite or not (folder / FINISHED_MARKER).exists():
                continue
            if finished_results(folder) is None:
                damaged.append(seed)
                continue
            check_same_flags(folder, series_config(seed_method(method, seed, split_seeds[seed])))
            kept.append(seed)
        if main_process:
            atomic_write_text(output_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))
            if len(kept) < len(seeds):  # the summary marks a finished series: not while seeds train
                for name in (SUMMARY, SUMMARY_REPORT):
                    (output_dir / name).unlink(missing_ok=True)
        for number, seed in enumerate(seeds, 1):
            folder = seed_folder(output_dir, seed)
            done = ("finished earlier, kept" if seed in kept else
                    "its all_results.json or its model is damaged: training it again" if seed in damaged else
                    "training")  # fmt: skip
            logger.info(f"=== seed {seed} ({number} of {len(seeds)}): {folder}, {done} ===\n")
            if seed not in kept:
                run_one(seed_method(method, seed, split_seeds[seed], overwrite=seed in damaged))
        # local=False: on several machines, only the main process of the first writes; all others wait.
        with args.main_process_first(local=False, desc="writing the seeds' summary"):
            if main_process:
                summary = write_summary(output_dir, seeds, kept, config)
                print(f"=== {len(seeds)} seeds (every figure: {output_dir / SUMMARY_REPORT}) ===\n\n"
                      f"{outcome_lines(summary)}\n", flush=True)  # fmt: skip
            else:
                summary = read_json(output_dir / SUMMARY)
    return summary


def check_keeps_the_series_seeds(output_dir: Path, seeds: list[int], overwrite: bool) -> None:
    """A rerun into a series names its seeds again (or more): fewer would leave the others' folders
    behind, outside the series' config and summary."""
    marker = read_json_object(output_dir / SERIES_MARKER)
    runs = marker.get("runs") if marker is not None and marker.get("kind") == "seeds" else None
    if overwrite or not isinstance(runs, list):
        return
    named = {SEED_FOLDER.format(seed) for seed in seeds}
    dropped = [run for run in runs if run not in named and (output_dir / run).exists()]
    if dropped:
        earlier = ",".join(str(run).removeprefix("seed-") for run in runs)
        raise UserError(f"--seeds: {output_dir} holds a series of the seeds {earlier}, and --seeds "
                        f"{','.join(map(str, seeds))} leaves out {', '.join(map(str, dropped))}; name them all (more "
                        f"seeds add to the series), pass --overwrite_output_dir to replace it, or choose another "
                        f"--output_dir.")  # fmt: skip


def series_split_seed(method) -> int | None:
    """The seed every run of the series cuts its split with (None: the split draws nothing at random,
    or each seed cuts its own with --seeds_vary_split)."""
    options = split_options(method)
    if method.run_args.seeds_vary_split:
        if options is None:
            raise UserError("--seeds_vary_split: this method's data split draws nothing at random (it is cut in file "
                            "order, or there is none), so every seed already has the same split; drop the flag.")  # fmt: skip
        if options.split_seed is not None:
            raise UserError(f"--seeds_vary_split cuts each seed's split with the seed itself, and --split_seed "
                            f"{options.split_seed} fixes it; drop one of the two.")  # fmt: skip
        return None
    if options is None:
        return None
    return options.split_seed if options.split_seed is not None else method.training_args.seed


def finished_results(folder: Path) -> dict | None:
    """A finished run's all_results.json, or None when it is missing or damaged (cut off, not an object)
    or the model it saved is gone."""
    if not any(next(folder.glob(pattern), None) for pattern in SAVED_WEIGHTS):
        return None
    return read_json_object(folder / FINISHED_MARKER)


SAVED_WEIGHTS = ("model.safetensors", "model-*.safetensors", "pytorch_model*.bin", "adapter_model.safetensors")


def check_same_flags(folder: Path, config: dict, series: bool = False) -> None:
    """A rerun keeps a finished seed only if its config.yaml has the flags it would be trained with
    now; with `series`, the series' own config.yaml, which also speaks for seeds that have not
    finished (they resume from their checkpoints), is checked the same way when it can be read."""
    path = folder / CONFIG
    try:
        earlier = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        earlier = None
    if not isinstance(earlier, dict):
        if series:  # the finished seeds' own files still decide for them
            return
        raise UserError(f"--output_dir: {path}, the flags of that seed's run, is missing or damaged; delete "
                        f"{folder} to train that seed again, or pass --overwrite_output_dir to train every seed "
                        f"again.")  # fmt: skip
    earlier = with_training_defaults(earlier)
    if "split_seed" in config and "split_seed" not in earlier and not series:  # trained before --split_seed:
        earlier["split_seed"] = earlier.get("seed")  # its split was cut with its seed
    for key in [key for key in config if key in earlier]:  # what an older file did not record is not compared
        if key not in RERUN_MAY_CHANGE and earlier.get(key) != config.get(key):
            own_splits = earlier.get(key) is None if series else earlier.get(key) == earlier.get("seed")
            hint = (" (those seeds cut their own splits: add --seeds_vary_split to go on with them)"
                    if key == "split_seed" and own_splits else "")  # fmt: skip
            raise UserError(
                f"--output_dir: {path.parent if series else folder.parent} holds seed runs trained with other flags "
                f"({key}: {earlier.get(key)!r} in {path}, {config.get(key)!r} now{hint}); pass --overwrite_output_dir "
                f"to train every seed again, or choose another folder."
            )


def final_metrics(results: dict) -> dict[str, float]:
    """The numbers of a finished run's all_results.json (a chat run keeps them in its one method row)."""
    rows = results.get("methods")
    if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict):
        results = rows[0]
    return figures(results)


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


def read_results(folder: Path) -> dict:
    return read_json(folder / FINISHED_MARKER)


def split_line(config: dict, drawn: bool = True) -> str | None:
    """How the series' runs split their data, from its config.yaml (None: no split drawn at random);
    `drawn`: whether the runs cut a split at all (data that comes split has its own)."""
    if not drawn and "split_seed" in config:
        return ("the data comes split (its own train, validation and test): every seed trains and is tested on the "
                "same texts")
    if config.get("seeds_vary_split"):
        return "each seed cut its own data split (--seeds_vary_split): the spread is the split's and the training's"
    if config.get("split_seed") is not None:
        return (f"one data split for every seed (split seed {config['split_seed']}): the spread is the training's "
                f"alone, and every seed is tested on the same texts")  # fmt: skip
    return None


def write_summary(output_dir: Path, seeds: list[int], kept: list[int], config: dict) -> dict:
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
    drawn = any("split_seed" in result for result in results.values())  # the runs record the seed they cut with
    split = split_line(config, drawn)
    if split is not None:
        summary.update(split_seed=config.get("split_seed") if drawn else None,
                       seeds_vary_split=drawn and bool(config.get("seeds_vary_split")))  # fmt: skip
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
            "figure is the final one of each seed's all_results.json; std is the sample standard deviation (n - 1)."
            + (f" Data: {split}." if split else "")),
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


# What the console shows of a series: the held-out figures after training, not timings or settings.
OUTCOME_PREFIXES = ("test_", "validation_", "eval_")
NOT_OUTCOMES = ("seconds", "runtime", "per_second", "_std", "_before", "_examples", "_steps", "_tokens")
CONSOLE_OUTCOMES = 12


def outcome_lines(summary: dict) -> str:
    """The series' held-out figures, one line each: mean ± std (min to max); summary.md has them all."""
    names = [name for name in summary["metrics"]
             if name.startswith(OUTCOME_PREFIXES) and not any(word in name for word in NOT_OUTCOMES)]  # fmt: skip
    if "train_loss" in summary["metrics"]:
        names.append("train_loss")
    shown = names[:CONSOLE_OUTCOMES]
    width = max((len(name) for name in shown), default=0)
    lines = []
    for name in shown:
        figures = summary["metrics"][name]
        std = "" if figures["std"] is None else f" ± {figures['std']:.4f}"
        lines.append(f"  {name:<{width}}  {figures['mean']:.4f}{std}  ({figures['min']:.4f} to {figures['max']:.4f})")
    if len(names) > len(shown):
        lines.append(f"  ... and {len(names) - len(shown)} more held-out figures in {SUMMARY_REPORT}")
    return "\n".join(lines) or f"  (no held-out figures: see {SUMMARY_REPORT})"


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
            bounds=(0, 1),
        )
    return written

