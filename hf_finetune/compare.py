"""Compare finished runs, of any method:

    hf-finetune compare outputs/lr-low outputs/lr-high
    hf-finetune compare outputs/head outputs/label-token --output outputs/head-vs-label-token

Each RUN_DIR is the --output_dir of a finished run (all_results.json) or of a --seeds run
(summary.json). Prints the flags that differ (from each config.yaml) and the final metrics (mean ±
std over a --seeds run's seeds), marks a difference smaller than the runs' seed spread, and for
classifiers counts the test texts the runs label differently. --output DIR also writes compare.md,
compare.json and the runs' curves overlaid (loss.png/.pdf, accuracy.png/.pdf). Runs of different
datasets or label sets are refused.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from hf_finetune.core.checks import check_writable_folder
from hf_finetune.core.config_file import with_training_defaults
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser, check_text_tokens
from hf_finetune.core.report.files import FINISHED_MARKER, atomic_write_json, atomic_write_text
from hf_finetune.core.report.markdown import markdown_table
from hf_finetune.core.report.results import SETTINGS, checked_results, checked_summary
from hf_finetune.core.run.ownership import CONFIG, SUMMARY, run_folder_above, series_kind
from hf_finetune.predict import is_trained_run

# torch, transformers and matplotlib are imported where they are used: `compare --help` needs none of them.


@dataclass
class ComparedRun:
    folder: Path
    name: str
    config: dict
    metrics: dict[str, dict]  # name -> mean, std (None: no seed spread), n (runs it is over)
    seeds: list[int] | None  # a --seeds run's seeds
    run_folders: list[Path]  # the run folders behind it: itself, or one per seed
    results: list[dict]  # their all_results.json

    @property
    def label_names(self) -> list[str] | None:
        return self.results[0].get("label_names")

    @property
    def varies_split(self) -> bool:
        """Whether the seeds of a --seeds run cut their own data splits (--seeds_vary_split, or a classifier
        series trained before one split for every seed was the rule: then each seed cut its split with its
        seed). Instruction data and preference pairs are cut in file order: the same for every seed."""
        file_order = "instruction_column" in self.config  # instruction data and preference pairs
        legacy = "split" in self.config and "split_seed" not in self.config and not file_order
        return self.seeds is not None and bool(self.config.get("seeds_vary_split", legacy))

    def describe(self) -> str:
        if self.seeds is None:
            return "one run"
        split = ""
        if self.varies_split:
            split = ", each seed with its own data split"
        elif self.config.get("split_seed") is not None:
            split = f", one data split for all (split seed {self.config['split_seed']})"
        return f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}){split}"


def read_config(folder: Path) -> dict:
    """The run's flags, every TrainingArguments value included (older files left out those at their defaults)."""
    path = folder / CONFIG
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} has no {CONFIG} (the run's flags), so it cannot be compared; train it again.") from None
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise UserError(f"{path} cannot be read ({error.__class__.__name__}); train that run again.") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a mapping of flags to values, as a run writes it; train that run again.")
    return with_training_defaults(config)


def unfinished(folder: Path) -> UserError:
    """Why `folder` is no finished run, in one sentence."""
    if not folder.exists():
        return UserError(f"{folder} does not exist; pass the --output_dir of a finished run or of a --seeds run.")
    if not folder.is_dir():
        return UserError(f"{folder} is a file; pass the --output_dir folder of a finished run or of a --seeds run.")
    if any(path.is_dir() for path in folder.glob("seed-*")):
        return UserError(f"{folder} is a --seeds run that has not finished (no {SUMMARY}); run its command again, "
                         f"which keeps the seeds that finished.")  # fmt: skip
    from hf_finetune.core.model.saved_runs import is_adapter_run, require_saved_run
    from hf_finetune.core.run.checkpoints import TRAINER_STATE

    if folder.name.startswith("checkpoint-") and (folder / TRAINER_STATE).is_file():
        run = f"pass its run's folder, {folder.parent}" if (folder.parent / FINISHED_MARKER).is_file() else \
            f"its run in {folder.parent} has not finished"  # fmt: skip
        return UserError(f"{folder} is a checkpoint, which has no results of its own; {run}.")
    if not ((folder / "config.json").is_file() or is_adapter_run(folder)) and any(folder.glob("checkpoint-*")):
        return UserError(f"{folder} holds checkpoints but no final model: its run did not finish; resume it with the "
                         f"same --output_dir, then compare it.")  # fmt: skip
    require_saved_run(folder)  # raises the sentence for an unfinished save, a damaged config, no run at all
    if not is_trained_run(folder):
        return UserError(f"{folder} holds a model that no run of hf-finetune trained (no {CONFIG} nor "
                         f"{FINISHED_MARKER}), not a run; pass the --output_dir of finished runs.")  # fmt: skip
    return UserError(f"{folder} holds a saved model but no {FINISHED_MARKER}: its run did not finish writing its "
                     f"results (or it is one method of a chat --compare run); train it again.")  # fmt: skip


def load_run(folder: Path, name: str) -> ComparedRun:
    from hf_finetune.core.run.seeds import final_metrics

    if (folder / SUMMARY).is_file():
        summary = checked_summary(folder / SUMMARY)
        run_folders = [folder / run["folder"] for run in summary["runs"]]
        for run_folder in run_folders:
            if not (run_folder / FINISHED_MARKER).is_file():
                raise UserError(f"{run_folder} has no {FINISHED_MARKER}, though {folder / SUMMARY} lists it; run the "
                                f"--seeds command again to finish it.")  # fmt: skip
        results = [checked_results(run_folder / FINISHED_MARKER) for run_folder in run_folders]
        count = len(summary["seeds"])
        metrics = {key: {"mean": figures["mean"], "std": figures["std"], "n": count}
                   for key, figures in summary["metrics"].items() if key not in SETTINGS}  # fmt: skip
        # --seeds replaces --seed: the seed row shows the series' seeds (and no seeds row says it again)
        config = {**{key: value for key, value in read_config(folder).items() if key != "seeds"},
                  "seed": list(summary["seeds"])}  # fmt: skip
        return ComparedRun(folder, name, config, metrics, summary["seeds"], run_folders, results)
    if not (folder / FINISHED_MARKER).is_file():
        raise unfinished(folder)
    results = checked_results(folder / FINISHED_MARKER)
    rows = results.get("methods")
    if isinstance(rows, list) and len(rows) > 1:
        raise UserError(f"{folder} holds {len(rows)} chat loss methods (--compare), compared in its comparison.md; "
                        f"pass runs of one method.")  # fmt: skip
    metrics = {key: {"mean": value, "std": None, "n": 1} for key, value in final_metrics(results).items()
               if key not in SETTINGS}  # a setting (the split's seed) is in the flags that differ, not a figure
    return ComparedRun(folder, name, read_config(folder), metrics, None, [folder], [results])


def run_names(folders: list[Path]) -> list[str]:
    """Each run's folder name, or the path as given where two share a name."""
    names = [folder.name or str(folder) for folder in folders]
    return [name if names.count(name) == 1 else str(folder) for name, folder in zip(names, folders)]


def check_comparable(runs: list[ComparedRun]) -> None:
    first = runs[0]
    for run in runs[1:]:
        ours, theirs = first.config.get("dataset"), run.config.get("dataset")
        if ours != theirs:
            raise UserError(f"{first.folder} trained on {ours or 'its built-in data'} and {run.folder} on "
                            f"{theirs or 'its built-in data'}: runs of different datasets cannot be compared.")  # fmt: skip
        if first.label_names != run.label_names:
            raise UserError(f"{first.folder} has {label_set(first.label_names)} and {run.folder} "
                            f"{label_set(run.label_names)}: runs of different label sets cannot be compared.")  # fmt: skip


def label_set(names: list[str] | None) -> str:
    return f"the labels {', '.join(names)}" if names else "no labels"


def differing_flags(runs: list[ComparedRun]) -> dict[str, list]:
    """Flag -> each run's value (None: not set, the default), for the flags whose values differ."""
    keys = dict.fromkeys(key for run in runs for key in run.config)
    values = {key: [run.config.get(key) for run in runs] for key in keys}
    return {key: row for key, row in values.items() if any(value != row[0] for value in row)}


def shared_metrics(runs: list[ComparedRun]) -> dict[str, list[dict | None]]:
    """Every figure some run has, with None for a run that has not measured it (a DPO and a KTO run: KTO
    logs no reward accuracy, DPO no KL estimate)."""
    keys = dict.fromkeys(key for run in runs for key in run.metrics)
    return {key: [run.metrics.get(key) for run in runs] for key in keys}


def within_seed_spread(runs: list[ComparedRun], figures: list[dict]) -> list[tuple[str, str, float, float]]:
    """Pairs of runs whose means differ by less than the larger seed standard deviation of the two
    (runs without seeds have none): (name, name, difference, spread)."""
    pairs = []
    for i, first in enumerate(figures):
        for j in range(i + 1, len(figures)):
            second = figures[j]
            if first is None or second is None:
                continue
            spreads = [figure["std"] for figure in (first, second) if figure["std"] is not None]
            difference = abs(first["mean"] - second["mean"])
            if spreads and difference < max(spreads):
                pairs.append((runs[i].name, runs[j].name, difference, max(spreads)))
    return pairs


def cell(figure: dict | None) -> str:
    if figure is None:
        return "not measured"
    mean = f"{figure['mean']:.4f}" if isinstance(figure["mean"], float) else str(figure["mean"])
    return mean if figure["std"] is None else f"{mean} ± {figure['std']:.4f}"


def mean_history(histories: list[list[dict]]) -> list[dict]:
    """Each logged figure averaged over a --seeds run's seeds, at the steps every seed logged."""
    if len(histories) == 1:
        return histories[0]
    by_step = [{point["step"]: point for point in history if "step" in point} for history in histories]
    steps = sorted(set.intersection(*(set(points) for points in by_step)))
    averaged = []
    for step in steps:
        group = [points[step] for points in by_step]
        keys = set.intersection(*(set(point) for point in group))
        averaged.append({key: statistics.fmean(point[key] for point in group) for key in keys
                         if all(isinstance(point[key], (int, float)) for point in group)})  # fmt: skip
    return averaged


def plot_compared_curves(runs: list[ComparedRun], output: Path) -> list[Path]:
    """loss.png/.pdf (training and validation loss of every run) and, for classifiers, accuracy.png/.pdf."""
    from hf_finetune.core.report.curves import plot_curves
    from hf_finetune.core.run.seeds import examples_per_epoch, final_metrics, run_history

    histories = [mean_history([run_history(results) for results in run.results]) for run in runs]
    points = [{"epoch": point["epoch"], **{f"{index} {key}": value for key, value in point.items()}}
              for index, history in enumerate(histories) for point in history if "epoch" in point]  # fmt: skip
    counts = {examples_per_epoch(run_history(run.results[0]), final_metrics(run.results[0])) for run in runs}
    per_epoch = counts.pop() if len(counts) == 1 else None
    top = {"examples_per_epoch": per_epoch or 1, "top_label": "Examples seen" if per_epoch else "Epochs"}

    def legend(run: ComparedRun, what: str) -> str:
        return f"{run.name} {what}" + (f" (mean of {len(run.seeds)} seeds)" if run.seeds else "")

    losses = {f"{index} {key}": legend(run, what) for index, run in enumerate(runs)
              for key, what in (("train_loss", "training"), ("eval_validation_loss", "validation"))}  # fmt: skip
    written = plot_curves(points, losses, "Loss", output / "loss", **top)
    accuracies = {f"{index} eval_validation_accuracy": legend(run, "validation") for index, run in enumerate(runs)}
    if any(key in point for point in points for key in accuracies):
        written += plot_curves(points, accuracies, "Accuracy", output / "accuracy", **top, bounds=(0, 1))
    return written


def flags_section(flags: dict[str, list], names: list[str]) -> str:
    if not flags:
        return "## Flags that differ\n\nNone: the runs were trained with the same flags."
    def shown(value) -> str:
        if isinstance(value, list):  # a series' seeds
            return ", ".join(map(str, value))
        return "not set" if value is None else str(value)

    rows = [[key, *(shown(value) for value in values)] for key, values in flags.items()]
    return "## Flags that differ\n\n" + markdown_table(["flag", *names], rows)


def metrics_section(runs: list[ComparedRun], metrics: dict[str, list[dict]], close: dict[str, list]) -> str:
    rows = [
        [key, *(cell(figure) for figure in figures),
         "; ".join(f"{a} vs {b} ({difference:.4f} < std {spread:.4f})" for a, b, difference, spread in close[key])]
        for key, figures in metrics.items()
    ]  # fmt: skip
    if any(run.seeds for run in runs):
        note = ("Mean ± sample standard deviation over a --seeds run's seeds. A difference smaller than the larger "
                "standard deviation of two runs is within the seed spread: it may be seed noise.")  # fmt: skip
    else:
        note = ("No run has several seeds, so how much each figure varies from seed to seed is unknown: train with "
                "--seeds 1,2,3 to tell a real difference from seed noise.")  # fmt: skip
    header = ["metric", *(run.name for run in runs), "difference within the seed spread"]
    return f"## Final metrics\n\n{markdown_table(header, rows)}\n\n{note}"


def compare(runs: list[ComparedRun]) -> tuple[dict, list[str]]:
    """compare.json's content and the sections of compare.md (without the curves)."""
    from hf_finetune.methods.classify.flipped import flipped_examples, flipped_section

    names = [run.name for run in runs]
    flags = differing_flags(runs)
    metrics = shared_metrics(runs)
    close = {key: within_seed_spread(runs, figures) for key, figures in metrics.items()}
    flipped = flipped_examples(runs)
    first = runs[0]
    labels = f"; labels {', '.join(first.label_names)}" if first.label_names else ""
    sections = [
        f"# {len(runs)} runs compared",
        "\n".join(f"- {run.name}: {run.folder}, {run.describe()}" for run in runs)
        + f"\n\nData: {first.config.get('dataset') or 'built-in'}{labels}",
        flags_section(flags, names),
        metrics_section(runs, metrics, close),
    ]
    if flipped is not None:
        sections.append("## Test texts labelled differently\n\n" + flipped_section(flipped, runs))
    data = {
        "runs": [{"name": run.name, "folder": str(run.folder), "seeds": run.seeds} for run in runs],
        "dataset": first.config.get("dataset"),
        "label_names": first.label_names,
        "flags": flags,
        "metrics": {key: dict(zip(names, figures)) for key, figures in metrics.items()},
        "within_seed_spread": {
            key: [{"runs": [a, b], "difference": difference, "std": spread} for a, b, difference, spread in pairs]
            for key, pairs in close.items() if pairs
        },  # fmt: skip
        "flipped": flipped,
    }
    return data, sections


def check_output_folder(output: Path, folders: list[Path]) -> None:
    """--output must be a folder of its own: not a run, a series or a folder inside one (whose files
    it would replace), nor a file; an earlier compare output is replaced."""
    if any(output.resolve() == folder.resolve() for folder in folders):
        raise UserError(f"--output: {output} is one of the runs compared, whose own curves it would replace; choose "
                        f"another folder.")  # fmt: skip
    inside = run_folder_above(output)
    if inside is not None:
        where = "is" if inside == output.absolute() else f"is inside {inside}, which is"
        what = "the folder of a run or series" if series_kind(inside) or is_trained_run(inside) or \
            any(inside.glob("checkpoint-*")) else "a model's folder"  # fmt: skip
        raise UserError(f"--output: {output} {where} {what}, whose files compare would replace or mix with its own; "
                        f"choose a folder outside every run and model.")  # fmt: skip
    check_writable_folder(output, "--output")


def main(argv: list[str] | None = None) -> dict:
    parser = ToolParser("python -m hf_finetune.compare", __doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished runs' or --seeds runs' --output_dir")
    parser.add_argument("--output", metavar="DIR", help="write compare.md, compare.json and the curves here")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    argv = sys.argv[1:] if argv is None else [str(token) for token in argv]
    check_text_tokens(argv)
    args = parser.parse_intermixed_args(argv)  # runs before and after the flags (`A --output DIR B`)
    for value, what in [*((run, "a run folder") for run in args.runs), (args.output, "--output")]:
        if value is not None and not value.strip():  # Path("") is the current folder
            raise UserError(f"{what} is empty; name a folder.")
    args.output = None if args.output is None else Path(args.output)
    folders = [Path(run) for run in args.runs]
    if len(folders) < 2:
        raise UserError(f"compare needs two or more run folders; only {folders[0]} was given.")
    for index, folder in enumerate(folders):
        if any(folder.resolve() == other.resolve() for other in folders[:index]):
            raise UserError(f"{folder} is given twice; pass each run once.")
    if args.output is not None:
        check_output_folder(args.output, folders)
    runs = [load_run(folder, name) for folder, name in zip(folders, run_names(folders))]
    check_comparable(runs)
    data, sections = compare(runs)
    print("\n\n".join(sections[1:]) + "\n", flush=True)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        curves = plot_compared_curves(runs, args.output)
        data["curves"] = [path.name for path in curves]
        images = "## Curves\n\n" + "\n\n".join(f"![{path.stem}]({path.name})" for path in curves
                                                if path.suffix == ".png")  # fmt: skip
        atomic_write_text(args.output / "compare.md", "\n\n".join([*sections[:4], images, *sections[4:]]) + "\n")
        atomic_write_json(args.output / "compare.json", data)
        print(f"compare: wrote {args.output / 'compare.md'}, compare.json and the curves", flush=True)
    return data


if __name__ == "__main__":
    run_cli(main)
