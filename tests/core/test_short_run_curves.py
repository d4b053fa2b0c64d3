"""Short runs draw curves (issue 24): a --max_steps run logs and evaluates often enough when the
user chose no interval, and says so in the plan; a plot with too few points says so on the image;
an accuracy axis shows 0 to 1, not 0.531 to 0.537."""

from __future__ import annotations

import pytest
from transformers import TrainingArguments

from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report import curves
from hf_finetune.core.run.preflight import intervals_plan_line, settle_training_args, short_run_intervals
from hf_finetune.methods.classify.arguments import HEAD_ARGUMENTS
from hf_finetune.recipes import spam


def training_args(tmp_path, **values) -> TrainingArguments:
    values = {"logging_steps": 10, "eval_strategy": "steps", "eval_steps": 50, **values}
    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **values)


@pytest.mark.parametrize(
    "max_steps, given, expected",
    [
        (30, frozenset(), {"logging_steps": 1, "eval_steps": 7}),  # the quick start's runs
        (100, frozenset(), {"logging_steps": 5, "eval_steps": 25}),
        (400, frozenset(), {}),  # 40 losses and 8 evaluations at the recipe's intervals already
        (30, frozenset({"logging_steps", "eval_steps"}), {}),  # the user's intervals stay
        (30, frozenset({"eval_steps"}), {"logging_steps": 1}),
        (10, frozenset(), {"logging_steps": 1}),  # a smoke run: its loss logged, evaluated at its end only
        (-1, frozenset(), {}),  # trained by epochs: long enough for the recipe's intervals
        (30, None, {}),  # not from a command line (a program calling run()): nothing changes
    ],
)
def test_a_short_run_logs_and_evaluates_often_enough_for_curves(tmp_path, max_steps, given, expected):
    assert short_run_intervals(training_args(tmp_path, max_steps=max_steps), given) == expected


def test_no_evaluation_is_added_where_the_run_does_not_evaluate_by_steps(tmp_path):
    args = training_args(tmp_path, max_steps=30, eval_strategy="epoch")
    assert short_run_intervals(args, frozenset()) == {"logging_steps": 1}


def test_the_plan_says_which_intervals_were_scaled_and_the_flags_that_choose(tmp_path):
    args = training_args(tmp_path, max_steps=30)
    intervals = settle_training_args(args, given_flags=frozenset())
    assert (args.logging_steps, args.eval_steps) == (1, 7)
    line = intervals_plan_line(intervals, args)["curves"]
    assert "every 1 step(s)" in line and "evaluation every 7 step(s)" in line and "30 steps" in line
    assert "--logging_steps / --eval_steps to choose" in line
    assert intervals_plan_line({}, args) == {}
    # A smoke run (under 20 steps) keeps the recipe's evaluation interval: the line says only what was scaled.
    smoke = training_args(tmp_path, max_steps=10)
    line = intervals_plan_line(settle_training_args(smoke, given_flags=frozenset()), smoke)["curves"]
    assert line.startswith("loss logged every 1 step(s): scaled to the run's 10 steps") and "evaluation" not in line


def test_parsing_records_the_flags_the_user_gave_on_the_command_line_or_in_a_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("eval_steps: 5\n")
    parsed = parse_arguments(HEAD_ARGUMENTS, ["--config", str(config), "--max-steps", "30", "--output_dir", "x"],
                             spam.DEFAULTS)  # fmt: skip
    run_args = next(item for item in parsed if hasattr(item, "given_flags"))
    assert run_args.given_flags == {"eval_steps", "max_steps", "output_dir"}  # not the recipe's defaults


@pytest.fixture
def drawn(monkeypatch):
    figures = []
    monkeypatch.setattr(curves, "save_figure", lambda figure, stem: figures.append(figure) or [])
    return figures


def notes(figure) -> str:
    return " ".join(text.get_text() for text in figure.texts)


def test_a_plot_with_too_few_points_says_so_on_the_image(drawn, tmp_path):
    one_point = [{"epoch": 0.2, "eval_validation_accuracy": 0.537, "eval_train_accuracy": 0.531}]
    curves.plot_curves(one_point, {"eval_validation_accuracy": "v", "eval_train_accuracy": "t"}, "Accuracy",
                       tmp_path / "accuracy", 100, bounds=(0, 1))  # fmt: skip
    assert "1 logged point per curve: too few to draw one" in notes(drawn[0])
    low, high = drawn[0].axes[0].get_ylim()
    assert low <= 0 and high >= 1  # the whole accuracy range, not 0.531 to 0.537


def test_a_plot_with_a_curve_has_no_note_and_a_flat_curve_is_drawn_flat(drawn, tmp_path):
    history = [{"epoch": step / 10, "train_loss": 2.0 + step * 1e-4} for step in range(5)]
    curves.plot_curves(history, {"train_loss": "loss"}, "Loss", tmp_path / "loss", 100)
    assert notes(drawn[0]) == ""
    low, high = drawn[0].axes[0].get_ylim()
    assert high - low >= 0.2  # at least a tenth of the values' size: 0.0004 of change is not a slope
