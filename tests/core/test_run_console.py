"""What a run shows on the console (issue 24): a line per evaluation, no raw log dicts; the dicts,
the libraries' warnings and Python's warnings in the run folder's run.log, on the console only
with --log_level info or debug."""

from __future__ import annotations

import logging
import warnings

import pytest
from test_run import CopyTextMethod, method_for
from transformers.utils import logging as transformers_logging

from hf_finetune.core.report.console import RUN_LOG
from hf_finetune.core.run.progress import evaluation_line
from hf_finetune.core.run.skeleton import run

pytestmark = pytest.mark.usefixtures("one_thread")

LIBRARY_WARNING = "We strongly recommend passing in an `attention_mask` (a test's stand-in)."
PYTHON_WARNING = "a FutureWarning a user cannot act on (a test's stand-in)"


class NoisyCopyTextMethod(CopyTextMethod):
    """Meets a transformers warning and a Python warning while it trains, as generation does."""

    def before_training(self, trainer) -> None:
        super().before_training(trainer)
        transformers_logging.get_logger("transformers.generation").warning(LIBRARY_WARNING)
        warnings.warn(PYTHON_WARNING, FutureWarning, stacklevel=1)
        # Where they went: the console handlers transformers kept, and whether warnings are logged.
        self.library_console = console_handlers()
        self.warnings_logged = warnings.showwarning.__module__ == "logging"


def console_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger("transformers").handlers
            if not isinstance(handler, logging.FileHandler)]  # fmt: skip


@pytest.mark.parametrize(
    "logs, line",
    [
        ({"eval_validation_loss": 0.72244, "eval_validation_accuracy": 0.5369, "eval_validation_precision": 0.5,
          "eval_validation_recall": 1.0, "eval_validation_f1": 0.6878, "eval_validation_runtime": 1.7, "epoch": 0.2},
         "step 7/30  validation: loss 0.7224, accuracy 0.5369, f1 0.6878"),
        ({"eval_train_loss": 0.7169, "eval_train_accuracy": 0.5312, "eval_train_samples_per_second": 187.0},
         "step 7/30  training sample: loss 0.7169, accuracy 0.5312"),
        ({"eval_loss": 0.69, "eval_rewards/accuracies": 0.75, "eval_logps/chosen": -40.0},
         "step 7/30  validation: loss 0.69, rewards/accuracies 0.75"),
        ({"eval_loss": 0.0, "eval_num_tokens": 824, "eval_completions/mean_length": 8, "eval_clip_ratio/low_mean": 0,
          "eval_rewards/contains:certainly/mean": 0.5, "eval_rewards/contains:certainly/std": 0.5, "eval_reward": 0.5,
          "eval_reward_std": 0.5, "eval_frac_reward_zero_std": 1, "eval_kl": 0.0012, "eval_entropy": 10.8},
         "step 7/30  validation: loss 0, reward 0.5, reward std 0.5, kl 0.0012"),
        ({"loss": 0.3775, "grad_norm": 0.87, "learning_rate": 7e-4, "epoch": 0.07}, None),
        ({"train_runtime": 71.2, "train_loss": 0.92}, None),
    ],
)  # fmt: skip
def test_an_evaluation_is_one_line_and_other_logs_are_none(logs, line):
    assert evaluation_line(logs, 7, 30) == line


def test_an_evaluation_before_training_names_step_0_alone():
    # Trainer knows no step count before train(): the untrained model's evaluation (instruction, DPO)
    logs = {"eval_validation_loss": 10.81, "eval_validation_model_preparation_time": 0.0057}
    assert evaluation_line(logs, 0, 0) == "step 0  validation: loss 10.81"


def test_a_run_prints_no_raw_dicts_and_keeps_them_and_the_libraries_warnings_in_run_log(tiny_gpt2, tmp_path, capsys):
    output = tmp_path / "run"
    before = console_handlers()
    method = method_for(tiny_gpt2, output, method_class=NoisyCopyTextMethod, logging_steps=1)
    run(method)
    out, err = capsys.readouterr()
    assert "{'" not in out and "training loss" in out  # --disable_tqdm (as method_for sets): a line per loss
    assert method.library_console == [] and method.warnings_logged  # during the run: off the console
    log = (output / RUN_LOG).read_text()
    assert "hf_finetune.run_log DEBUG: step 1: {'loss': " in log and "step 2: {'loss': " in log
    assert f"transformers.generation WARNING: {LIBRARY_WARNING}" in log and PYTHON_WARNING in log
    assert "copy the texts" not in log  # the plan is printed, not logged
    # The run leaves the libraries' console as it found it.
    assert console_handlers() == before and warnings.showwarning.__module__ != "logging"


@pytest.mark.filterwarnings("ignore:a FutureWarning a user cannot act on")
def test_log_level_info_shows_the_libraries_warnings_on_the_console_too(tiny_gpt2, tmp_path):
    output = tmp_path / "run"
    method = method_for(tiny_gpt2, output, method_class=NoisyCopyTextMethod, log_level="info")
    run(method)
    assert method.library_console == console_handlers() != [] and not method.warnings_logged
    assert LIBRARY_WARNING in (output / RUN_LOG).read_text()


def test_a_refused_run_writes_no_run_log(tiny_gpt2, tmp_path):
    output = tmp_path / "run"
    with pytest.raises(Exception, match="check_arguments refused"):
        run(method_for(tiny_gpt2, output, fail_in="check_arguments"))
    assert not (output / RUN_LOG).exists()
