"""What a run shows on the console (issue 24): a line per evaluation, no raw log dicts; the dicts,
the libraries' warnings and Python's warnings in the run folder's run.log, on the console only
with --log_level info or debug."""

from __future__ import annotations

import logging
import re
import warnings
from types import SimpleNamespace

import datasets
import pytest
from test_run import CopyTextMethod, method_for
from transformers import AutoModelForCausalLM
from transformers.utils import logging as transformers_logging

from hf_finetune.core.model.generation import greedy_generate
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.report.console import RUN_LOG, RunLogHandler, messages_in_run_log, progress_bar, show_bars
from hf_finetune.core.run.progress import evaluation_line
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.classify.head.train import HeadMethod
from hf_finetune.methods.classify.label_token.train import LabelTokenMethod
from hf_finetune.methods.grpo.train import GrpoMethod
from hf_finetune.methods.instruction.train import InstructionMethod
from hf_finetune.methods.preference.train import PreferenceMethod

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
            if not isinstance(handler, (logging.FileHandler, logging.NullHandler))]  # fmt: skip


@pytest.mark.parametrize(
    "method, logs, line",
    [
        (LabelTokenMethod, {"eval_validation_loss": 0.72244, "eval_validation_accuracy": 0.5369,
          "eval_validation_precision": 0.5, "eval_validation_recall": 1.0, "eval_validation_f1": 0.6878,
          "eval_validation_runtime": 1.7, "epoch": 0.2},
         "step 7/30  validation: loss 0.7224, accuracy 0.5369, f1 0.6878"),
        (HeadMethod, {"eval_train_loss": 0.7169, "eval_train_accuracy": 0.5312, "eval_train_samples_per_second": 187.0},
         "step 7/30  training sample: loss 0.7169, accuracy 0.5312"),
        (PreferenceMethod, {"eval_loss": 0.69, "eval_rewards/accuracies": 0.75, "eval_logps/chosen": -40.0},
         "step 7/30  validation: loss 0.69, rewards/accuracies 0.75"),
        (GrpoMethod, {"eval_loss": 0.0, "eval_num_tokens": 824, "eval_completions/mean_length": 8,
          "eval_clip_ratio/low_mean": 0, "eval_rewards/contains:certainly/mean": 0.5,
          "eval_rewards/contains:certainly/std": 0.5, "eval_reward": 0.5, "eval_reward_std": 0.5,
          "eval_frac_reward_zero_std": 1, "eval_kl": 0.0012, "eval_entropy": 10.8},
         "step 7/30  validation: loss 0, reward 0.5, reward std 0.5, kl 0.0012"),
        (InstructionMethod, {"eval_loss": 2.5, "eval_runtime": 0.4}, "step 7/30  validation: loss 2.5"),
        (HeadMethod, {"loss": 0.3775, "grad_norm": 0.87, "learning_rate": 7e-4, "epoch": 0.07}, None),
        (HeadMethod, {"train_runtime": 71.2, "train_loss": 0.92}, None),
    ],
)  # fmt: skip
def test_an_evaluation_is_one_line_of_the_figures_its_method_shows_and_other_logs_are_none(method, logs, line):
    assert evaluation_line(logs, 7, 30, method.console_leaves_out) == line


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


@pytest.fixture
def bars_shown():
    show_bars(True)  # as on a run's main process without --disable_tqdm
    yield
    show_bars(True)


def test_a_phases_bar_shows_on_stderr_and_leaves_no_trace(bars_shown, capsys):
    bar = progress_bar(3, "answering", unit="answer")
    for _ in range(3):
        bar.update(1)
    bar.close()
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("\ranswering:") and "answer" in err
    assert err.endswith("\r") and not err.rsplit("\r", 2)[-2].strip()  # the line is blank again


@pytest.mark.parametrize("shown, total, batches", [(False, 3, None), (True, 1, None), (True, 5, 1)])
def test_no_bar_when_bars_are_off_or_for_one_step(bars_shown, capsys, shown, total, batches):
    show_bars(shown)  # off: --disable_tqdm, or a process other than the main one
    bar = progress_bar(total, "answering", batches=batches)
    bar.update(total)
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_answers_in_several_batches_show_a_bar(bars_shown, tiny_gpt2, capsys):
    tokenizer = load_tokenizer(str(tiny_gpt2))
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    prompts = [tokenizer(text)["input_ids"] for text in ("Hi", "Hello there", "A third prompt")]
    capsys.readouterr()  # transformers' own bar, loading the weights
    greedy_generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=3, description="answering test")
    assert capsys.readouterr().err == ""  # one batch: nothing to follow
    greedy_generate(model, tokenizer, prompts, max_new_tokens=2, batch_size=1, description="answering test")
    assert "answering test:" in capsys.readouterr().err


class MappingCopyTextMethod(CopyTextMethod):
    """Encodes with a datasets map, whose bar datasets would leave on screen."""

    def encode(self, tokenizer, model) -> None:
        super().encode(tokenizer, model)
        self.dataset = self.dataset.map(lambda row: row, desc="copying")


def test_a_run_shows_its_own_named_bars_and_not_the_libraries(bars_shown, tiny_gpt2, tmp_path, capsys):
    method = method_for(tiny_gpt2, tmp_path / "run", method_class=MappingCopyTextMethod)
    method.training_args.disable_tqdm = False  # the bars, as a user's run has them
    run(method)
    err = capsys.readouterr().err
    labels = set(re.findall(r"\r([^\r\n|]*?):?\s*\d+%\|", err))
    assert "training" in labels and "" not in labels, labels  # every bar says what it counts, from its first frame
    assert "Loading weights" not in err and "Writing model shards" not in err  # transformers' own bars
    assert "copying" not in err  # datasets' map bar (left on screen)
    assert transformers_logging.is_progress_bar_enabled() and datasets.is_progress_bar_enabled()  # as found


def test_a_process_other_than_the_main_one_leaves_the_console_to_it(tmp_path, capfd):
    # Under accelerate launch --num_processes 2: process 1's library messages, warnings and bars are silenced.
    replica = SimpleNamespace(process_index=1, should_log=False, log_level="passive", output_dir=str(tmp_path))
    with messages_in_run_log(replica) as log_file:
        transformers_logging.get_logger("transformers.generation").warning(LIBRARY_WARNING)
        warnings.warn(PYTHON_WARNING, FutureWarning, stacklevel=1)
        assert not transformers_logging.is_progress_bar_enabled() and datasets.are_progress_bars_disabled()
    _, err = capfd.readouterr()
    assert LIBRARY_WARNING not in err and PYTHON_WARNING not in err
    assert log_file is None and not any(tmp_path.iterdir())  # run.log is the main process's
    assert transformers_logging.is_progress_bar_enabled() and not datasets.are_progress_bars_disabled()


@pytest.mark.parametrize(
    "message, written",
    [
        ("\x1b[1mGPT2ForSequenceClassification LOAD REPORT\x1b[0m from: x", "GPT2ForSequenceClassification LOAD REPORT from: x"),
        ("\x1b[Astep 7/30  validation: loss 0.72", "step 7/30  validation: loss 0.72"),  # tqdm.write's cursor-up
        ("training:  50%|#    | 1/2\rtraining: 100%|#####| 2/2\r", "training: 100%|#####| 2/2"),
        ("\x1b]8;;https://hf.co\x1b\\a link\x1b]8;;\x1b\\ and \x1b[31;1mred\x1b[m", "a link and red"),
        ("two\nlines, ü and a tab\t", "two\nlines, ü and a tab\t"),
    ],
)  # fmt: skip
def test_run_log_is_plain_text(tmp_path, message, written):
    handler = RunLogHandler(tmp_path / RUN_LOG)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.start()
    handler.emit(logging.LogRecord("transformers", logging.WARNING, __file__, 1, message, None, None))
    handler.close()
    assert (tmp_path / RUN_LOG).read_text(encoding="utf-8") == written + "\n"
