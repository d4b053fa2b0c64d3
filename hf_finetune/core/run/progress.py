"""What a run shows while it trains: one live bar for training (the running loss in it; tqdm adds
the speed and the time left), a bar for each evaluation or prediction while it runs, and one line
per evaluation. Trainer's raw log dicts go to the run's run.log (console.run_log), not the console.
With --disable_tqdm, no bars: a line per logged loss instead."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from hf_finetune.core.model.callbacks import LabelledProgressCallback
from hf_finetune.core.report.console import run_log, show_bars

# Per-evaluation figures no line shows (timings); a method adds its own (Method.console_leaves_out).
LEFT_OUT = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")
SPLIT_NAMES = {"eval_validation_": "validation", "eval_train_": "training sample", "eval_": "validation"}


def evaluation_line(logs: dict, step: int, max_steps: int, left_out: tuple[str, ...] = ()) -> str | None:
    """`step 7/30  validation: loss 0.7224, accuracy 0.5369, f1 0.6878` for a log entry holding an
    evaluation's figures (those whose name holds a part of LEFT_OUT or `left_out` left out); None
    for any other entry."""
    prefix = next((prefix for prefix in SPLIT_NAMES if any(key.startswith(prefix) for key in logs)), None)
    if prefix is None:
        return None
    figures = [f"{key[len(prefix):].replace('_', ' ')} {value:.4g}" for key, value in logs.items()
               if key.startswith(prefix) and isinstance(value, (int, float))
               and not any(part in key for part in (*LEFT_OUT, *left_out))]  # fmt: skip
    return f"{step_of(step, max_steps)}  {SPLIT_NAMES[prefix]}: {', '.join(figures)}"


def step_of(step: int, max_steps: int) -> str:
    """`step 7/30`; `step 0` before training (Trainer knows no step count yet)."""
    return f"step {step}/{max_steps}" if max_steps else f"step {step}"


class RunConsole(LabelledProgressCallback):
    """Trainer's bars, the training one named and carrying the running loss; an evaluation as one
    line (stdout); every log dict in run.log. `bars`: False with --disable_tqdm (lines only)."""

    def __init__(self, bars: bool = True, left_out: tuple[str, ...] = ()):
        super().__init__()
        self.bars = bars
        self.left_out = left_out

    def on_train_begin(self, args, state, control, **kwargs):
        # As ProgressCallback.on_train_begin, the bar named from its first drawing on.
        if self.bars and state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, dynamic_ncols=True, desc="training")
        self.current_step = 0

    def on_step_end(self, args, state, control, **kwargs):
        if self.bars:
            super().on_step_end(args, state, control, **kwargs)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.bars:
            super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bars:
            super().on_train_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = {key: value for key, value in (logs or {}).items() if key != "total_flos"}
        run_log.debug(f"step {state.global_step}: {logs}")
        if not state.is_world_process_zero:
            return
        line = evaluation_line(logs, state.global_step, state.max_steps, self.left_out)
        if line is None and "loss" in logs:
            if self.training_bar is not None:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
                return
            if not self.bars and "epoch" in logs:
                line = f"{step_of(state.global_step, state.max_steps)}  training loss {logs['loss']:.4g}"
        if line is not None:
            tqdm.write(line, file=sys.stdout)


def use_run_console(trainer: Trainer, left_out: tuple[str, ...] = ()) -> None:
    """Put RunConsole in the place of Trainer's ProgressCallback (or PrinterCallback, with
    --disable_tqdm); a trainer that labels its bars (OrderedEvalTrainer.progress) labels it."""
    bars = trainer.callback_handler.pop_callback(ProgressCallback) is not None
    trainer.callback_handler.pop_callback(PrinterCallback)
    console = RunConsole(bars=bars, left_out=left_out)
    trainer.add_callback(console)
    show_bars(bars and trainer.is_world_process_zero())  # the other phases' bars (frozen cache, answers) too
    if hasattr(trainer, "progress"):
        trainer.progress = console if bars else None
