"""End to end: `accelerate launch recipes/spam.py` on a tiny random-init GPT-2 and the real data."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import python_module, run_command

from hf_finetune.core.model import precision


def spam_command(model, data, output, *extra) -> list[str]:
    return [
        "accelerate", "launch", "-q", "recipes/spam.py",
        "--model_name_or_path", str(model),
        "--dataset", str(data),
        "--trainable", "all",
        "--learning_rate", "1e-3",
        "--num_train_epochs", "3",
        "--save_strategy", "no",
        "--output_dir", str(output),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def spam_run(tiny_gpt2, sms_zip, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "spam"
    result = run_command(spam_command(tiny_gpt2, sms_zip, output))
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_run_learns_and_writes_its_results(spam_run):
    output, result = spam_run
    results = json.loads((output / "all_results.json").read_text())
    assert results["test_accuracy"] >= 0.93, results
    assert results["eval_accuracy"] >= 0.85 and results["train_accuracy"] >= 0.9
    assert results["label_names"] == ["ham", "spam"]
    history = results["history"]
    evaluated = [point for point in history if "eval_validation_accuracy" in point]
    assert len(evaluated) >= 3 * 2, "every 50 steps and at every epoch end"
    assert any(point["epoch"] == 1.0 for point in evaluated)
    assert history[-1]["examples_seen"] == 3 * 1045
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf", "report.md", "config.yaml",
                 "model.safetensors", "tokenizer.json"):
        assert (output / name).stat().st_size > 0, name
    assert "| test | 300 |" in (output / "report.md").read_text()
    plan = result.stdout.split("summary:")[0]
    words = " ".join(plan.split())  # the key column is as wide as the longest key
    # the precision this machine computes fastest: bf16 where the CPU has native bf16, fp32 elsewhere
    native = precision.cpu_bf16_instructions() is not None and precision.bf16_autocast_runs_on_cpu()
    chosen = "precision bf16 mixed precision" if native else "precision fp32, chosen for this machine"
    for expected in ("plan:", "sizes train 1045, validation 149, test 300", "trainable", chosen,
                     "frozen cache off: --trainable all", "peak "):
        assert expected in words
    # accelerate launch sets OMP_NUM_THREADS for its processes (1 unless told otherwise); the plan says so
    assert "per process, OMP_NUM_THREADS=" in plan and plan.count("x1 process\n") == 1


def test_run_prints_each_evaluation_once_labels_its_bars_and_ends_with_a_summary(spam_run):
    output, result = spam_run
    results = json.loads((output / "all_results.json").read_text())
    evaluated = [point for point in results["history"] if "eval_validation_accuracy" in point]
    # One line per evaluated split, no raw log dict (issue 24); the dicts are in run.log.
    assert len(re.findall(r"^step \d+/\d+  validation: loss \S+, accuracy ", result.stdout, re.M)) == len(evaluated)
    assert len(re.findall(r"^step \d+/\d+  training sample: loss ", result.stdout, re.M)) == len(evaluated)
    assert "{'" not in result.stdout and "'eval_validation_accuracy'" in (output / "run.log").read_text()
    for label in ("evaluating validation", "evaluating training sample", "predicting test"):
        assert label in result.stderr
    summary = result.stdout.split("summary:\n")[1].splitlines()
    assert summary[0].split() == ["test", "accuracy", f"{results['test_accuracy']:.4f}", "(chance", "level",
                                  f"{results['test_chance_accuracy']:.4f})"]
    assert summary[1].split() == ["test", "F1", "(spam)", f"{results['test_f1']:.4f}"]
    assert summary[2].split()[:3] == ["training", "time", f"{results['train_runtime_seconds']:.1f}"]
    assert summary[3].split()[:3] == ["hardware", "use", f"{results['model_flops_utilization']:.1%}"]
    assert summary[4].split() == ["report", str(output / "report.md")]
    assert summary[5].split() == ["model", str(output)]
    assert 0 < results["model_flops_utilization"] <= 1 and results["model_flops"] > 0


def test_pipeline_loads_the_saved_model_as_is(spam_run):
    output, _ = spam_run
    code = (
        "from transformers import pipeline; import json, sys;"
        f"p = pipeline('text-classification', model={str(output)!r});"
        "print(json.dumps(p(['WINNER!! You won a 1000 prize. Call 09061701461 to claim', 'see you at 6 then'])))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [answer["label"] for answer in answers] == ["spam", "ham"]


def test_predict_cli_from_arguments_file_and_stdin(spam_run, tmp_path):
    output, _ = spam_run
    result = python_module("hf_finetune.predict", str(output), "URGENT! You have won a prize, text WIN to 80086")
    assert result.returncode == 0, result.stderr
    label, probability, text = result.stdout.strip().split("\t")
    assert label == "spam" and 0.5 < float(probability) <= 1 and text.startswith("URGENT")

    texts = tmp_path / "texts.txt"
    texts.write_text("ok lor see you later\n\nFREE ringtone! reply YES to 85023\n", encoding="utf-8")
    from_file = python_module("hf_finetune.predict", str(output), "--file", str(texts), "--json")
    lines = [json.loads(line) for line in from_file.stdout.strip().splitlines()]
    assert [line["label"] for line in lines] == ["ham", "spam"]

    from_stdin = run_command([sys.executable, "-m", "hf_finetune.predict", str(output)])
    assert from_stdin.returncode == 2  # no texts and no stdin content
    piped = subprocess.run(
        [sys.executable, "-m", "hf_finetune.predict", str(output)],
        input="ok lor see you later\n", capture_output=True, text=True,
    )  # fmt: skip
    assert piped.stdout.startswith("ham\t")


def test_finished_run_is_not_overwritten(spam_run, tiny_gpt2, sms_zip):
    output, _ = spam_run
    before = (output / "all_results.json").read_bytes()
    result = run_command(spam_command(tiny_gpt2, sms_zip, output))
    assert result.returncode != 0
    assert "holds a finished run" in result.stderr and "--overwrite_output_dir" in result.stderr
    assert (output / "all_results.json").read_bytes() == before


def test_bad_input_from_the_command_line_is_one_line_without_traceback(tmp_path, tiny_gpt2, sms_zip):
    command = [sys.executable, "recipes/spam.py", "--model_name_or_path", str(tiny_gpt2),
               "--dataset", "missing.zip", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    result = run_command(command)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --dataset: missing.zip does not exist."
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--trainable", "some"], "--trainable: 'some' is not a policy"),
        (["--model_name_or_path", "nobody/no-such-model"], "could not load the tokenizer 'nobody/no-such-model'"),
        (["--text_column", "sms"], "has no column 'sms'"),
        (["--split", "0.8,0.2"], "--split: '0.8,0.2' must be three fractions"),
        (["--use_cpu", "--bf16", "--fp16"], "conflicting or invalid flags"),
    ],
)
def test_bad_flags_give_one_clear_line(tmp_path, tiny_gpt2, sms_zip, capsys, flags, message):
    from hf_finetune.core.errors import run_cli
    from hf_finetune.methods.classify.head.train import main
    from hf_finetune.recipes.spam import DEFAULTS

    argv = ["--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip), "--output_dir", str(tmp_path / "out"),
            *flags]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "all_results.json").exists()
