"""Publish a run to the Hugging Face Hub: a model card, then Trainer's own push.

Flags are TrainingArguments': `--push_to_hub --hub_model_id USER/NAME [--hub_private_repo]
[--hub_strategy every_save|checkpoint|all_checkpoints|end]`. The token comes from the usual
places (HF_TOKEN, `hf auth login`); a `--hub_token` is moved into the process environment at
once, so it is never pickled into training_args.bin, written to config.yaml or the card, or
printed. `HF_ENDPOINT` points the push at another Hub (a mirror, a test server).

The push runs after every local file is written: a failed push leaves the run folder complete
and says so.
"""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml
from transformers import Trainer, TrainingArguments

from hf_finetune.core.errors import UserError
from hf_finetune.core.report.console import logger
from hf_finetune.core.report.files import atomic_write_text

CARD = "README.md"
SECRET_FLAGS = ("--hub_token",)
GENERATOR_LIMITS = [
    "A small model fine-tuned on a small data set: answers can be wrong, invented or off-topic; check them.",
    "Greedy decoding; it has no safety tuning and repeats the biases of its base model and data.",
    "Not for decisions about people, medical, legal or financial advice.",
]


def hub_token_moved_out(args: TrainingArguments) -> dict[str, object]:
    """The token leaves the arguments (which every checkpoint saves) for the environment, where the
    Hub client reads it; returns the change to the arguments."""
    if not getattr(args, "hub_token", None):
        return {}
    os.environ["HF_TOKEN"] = args.hub_token
    return {"hub_token": None}


def check_hub_push(args: TrainingArguments) -> None:
    """The push flags, checked before anything runs."""
    if args.push_to_hub and not args.hub_model_id:
        raise UserError("--push_to_hub needs --hub_model_id USER/NAME (the repository to create or update).")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@contextmanager
def repo_creation_reported(args: TrainingArguments) -> Iterator[None]:
    """Trainer creates the repository when it is built: report a failure before any training."""
    try:
        yield
    except Exception as error:
        if not args.push_to_hub:
            raise
        raise UserError(
            f"--push_to_hub: could not create or reach the repository {args.hub_model_id} on {endpoint()} "
            f"({error.__class__.__name__}: {first_line(error)}); nothing was trained. Log in with `hf auth login` "
            f"or set HF_TOKEN, check --hub_model_id, or drop --push_to_hub."
        ) from None


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return scrub(text.splitlines()[0] if text else "no message")


def scrub(text: str) -> str:
    """Remove the token from a text (it may sit in an error message or a command line)."""
    token = os.environ.get("HF_TOKEN")
    return text.replace(token, "***") if token else text


def command_line(argv: list[str] | None = None) -> str:
    """The command that started the run, as a user would type it, without secret values."""
    argv = list(sys.argv if argv is None else argv)
    shown: list[str] = []
    skip_next = False
    for token in argv[1:]:
        if skip_next:
            skip_next = False
            continue
        if token in SECRET_FLAGS:
            skip_next = True
            continue
        if token.startswith(tuple(f"{flag}=" for flag in SECRET_FLAGS)):
            continue
        shown.append(token)
    script = Path(os.path.abspath(argv[0] if argv else "recipe.py"))  # not resolved: recipes/ links into the package
    package = Path(__file__).resolve().parents[2]
    if script.is_relative_to(package):  # started as `python -m hf_finetune.<module>`
        target = ["-m", ".".join([package.name, *script.relative_to(package).with_suffix("").parts])]
    else:
        try:
            target = [str(script.relative_to(Path.cwd()))]
        except ValueError:
            target = [str(script)]
    launcher = "accelerate launch" if "WORLD_SIZE" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ else "python"
    return scrub(" ".join([launcher, *map(shlex.quote, target), *map(shlex.quote, shown)]))


def is_hub_id(name: str) -> bool:
    return not Path(name).expanduser().exists() and name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def model_card(
    *,
    title: str,
    method: str,
    base_model: str,
    data: list[str],
    metrics_table: str,
    plots: list[str],
    intended_use: str,
    limits: list[str],
    pipeline_tag: str,
    usage: str,
    extra_sections: list[str] | None = None,
    tags: list[str] | None = None,
) -> str:
    """A model card: YAML metadata, then method, base model, data, command, metrics, plots, use, limits."""
    metadata: dict = {"library_name": "transformers", "pipeline_tag": pipeline_tag, "tags": ["hf_finetune", *(tags or [])]}
    if is_hub_id(base_model):
        metadata["base_model"] = base_model
    sections = [
        "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---",
        f"# {title}",
        f"## Method\n\n{method}",
        "## Base model\n\n"
        + (f"[{base_model}](https://huggingface.co/{base_model})" if is_hub_id(base_model) else f"`{base_model}` (a local model)"),
        "## Data\n\n" + "\n".join(f"- {line}" for line in data),
        f"## Training command\n\n```bash\n{command_line()}\n```",
        f"## Results\n\n{metrics_table}",
        *( ["## Training curves\n\n" + "\n\n".join(f"![{Path(plot).stem}]({plot})" for plot in plots)] if plots else []),
        *(extra_sections or []),
        f"## How to use\n\n```python\n{usage}\n```",
        f"## Intended use\n\n{intended_use}",
        "## Limits\n\n" + "\n".join(f"- {line}" for line in limits),
    ]
    return scrub("\n\n".join(sections) + "\n")


def is_adapter(args: TrainingArguments) -> bool:
    return (Path(args.output_dir) / "adapter_config.json").is_file()


def training_summary(args: TrainingArguments, what_trains: str) -> str:
    length = f"{args.max_steps} steps" if args.max_steps > 0 else f"{args.num_train_epochs:g} epoch(s)"
    summary = (
        f"What trained: {what_trains}. {length}, AdamW lr {args.learning_rate:g}, weight decay {args.weight_decay:g}, "
        f"batch {args.per_device_train_batch_size} per device x {args.world_size} process(es), seed {args.seed}."
    )
    if is_adapter(args):
        summary += " The LoRA adapter is published; the base model is loaded separately (with `peft` installed)."
    return summary


def defer_push_to_end(trainer: Trainer) -> None:
    """Trainer.save_model pushes to the Hub on every explicit call when push_to_hub is on, before
    the run's results exist and without a way to report a failure; the run pushes once, at the
    end (push_run). Checkpoint pushes (--hub_strategy) are not affected."""
    save_model = trainer.save_model
    trainer.save_model = lambda output_dir=None, _internal_call=False: save_model(output_dir, _internal_call=True)


def push_run(trainer: Trainer, card: str) -> None:
    """Push the final model, tokenizer, card and run files. Every process calls this (Trainer
    saves collectively); only the main process uploads."""
    output_dir = Path(trainer.args.output_dir)
    if trainer.is_world_process_zero():
        atomic_write_text(output_dir / CARD, card)
    # Trainer.push_to_hub writes its own generic card over README.md just before uploading;
    # ours carries the method, data, metrics and plots, so it replaces that step for this call.
    trainer.create_model_card = lambda *args, **kwargs: atomic_write_text(output_dir / CARD, card)
    try:
        trainer.push_to_hub(commit_message="hf_finetune: final model, card and results")
    except Exception as error:
        raise UserError(
            f"--push_to_hub: the push of {output_dir} to {trainer.args.hub_model_id} on {endpoint()} failed "
            f"({error.__class__.__name__}: {first_line(error)}); every local file in {output_dir} is intact. "
            f"Push it later with `hf upload {trainer.args.hub_model_id} {output_dir}`."
        ) from None
    if trainer.is_world_process_zero():
        logger.info(f"pushed {output_dir} to {endpoint()}/{trainer.args.hub_model_id}")
