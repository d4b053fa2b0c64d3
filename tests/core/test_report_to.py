"""--report_to: a Trainer logging backend really logs; a missing or unknown one stops the run first."""

from __future__ import annotations

import importlib.util

import pytest

from hf_finetune.core.errors import UserError
from hf_finetune.methods.classify.head import train as classification


def short_run(model, data, output, *extra) -> list[str]:
    return ["--model_name_or_path", str(model), "--dataset", str(data), "--balance", "--max_steps", "3",
            "--logging_steps", "1", "--max_length", "32", "--eval_strategy", "no", "--save_strategy", "no",
            "--train_eval_samples", "8", "--per_device_eval_batch_size", "64", "--output_dir", str(output), *extra]  # fmt: skip


@pytest.mark.slow
def test_tensorboard_receives_the_training_curves(tiny_gpt2, sms_zip, tmp_path):
    pytest.importorskip("tensorboard", reason="installed with the test extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = tmp_path / "run"
    classification.main(short_run(tiny_gpt2, sms_zip, output, "--report_to", "tensorboard"))
    [events] = {path.parent for path in (output / "runs").rglob("events.out.tfevents.*")}
    log = EventAccumulator(str(events))
    log.Reload()
    losses = log.Scalars("train/loss")
    assert [point.step for point in losses] == [1, 2, 3]


@pytest.mark.parametrize("backend", ["trackio", "wandb"])
def test_a_backend_that_is_not_installed_stops_the_run_before_anything_loads(backend, tmp_path):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(UserError, match=f"--report_to {backend}: the {backend} package is not installed; `pip install {backend}`"):
        classification.main(["--report_to", backend, "--dataset", str(tmp_path / "never-read.csv"),
                             "--output_dir", str(tmp_path / "run")])  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_an_unknown_backend_is_named(tmp_path):
    with pytest.raises(UserError, match="--report_to: 'tensorbored' is not a logging backend Trainer offers"):
        classification.main(["--report_to", "tensorbored", "--output_dir", str(tmp_path / "run")])
