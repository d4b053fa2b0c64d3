"""--cache_frozen through the commands a user runs, on a tiny GPT-2 whose dropout is 0 (the cache's
only difference from the whole model is that the frozen layers have no dropout noise):

- a spam run with `--trainable last_block` matches the uncached run's accuracy within one example
  and its saved model predicts the same labels; every forward call was served from the cache;
- a label-token run likewise (its evaluation feeds the model the text + each label word);
- a run resumed from a checkpoint of a cached run ends with the uninterrupted run's weights;
- over --cache_frozen_max_gb, with --trainable all and with LoRA the plan says off and why.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_finetune import classify, predict
from hf_finetune.core.errors import run_cli
from hf_finetune.recipes import spam

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tiny_gpt2, tmp_path_factory) -> Path:
    """The tiny GPT-2 with every dropout at 0."""
    folder = tmp_path_factory.mktemp("models") / "tiny-gpt2-no-dropout"
    shutil.copytree(tiny_gpt2, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def messages(sms_zip, tmp_path_factory) -> Path:
    """120 ham and 120 spam messages of the SMS Spam Collection, as a csv file."""
    with zipfile.ZipFile(sms_zip) as archive:
        lines = archive.read("SMSSpamCollection").decode("utf-8").splitlines()
    rows = [line.split("\t", 1) for line in lines]
    chosen = [r for r in rows if r[0] == "ham"][:120] + [r for r in rows if r[0] == "spam"][:120]
    path = tmp_path_factory.mktemp("data") / "messages.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows([text, label] for label, text in chosen)
    return path


def spam_argv(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    return ["--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
            "--num_train_epochs", "2", "--learning_rate", "2e-3", "--eval_steps", "10", "--save_strategy", "no",
            "--disable_tqdm", "true",
            "--bf16", "false",  # fp32 on every machine: the cached and uncached runs compute alike
            *extra]  # fmt: skip


def run_spam(capsys, argv: list[str]) -> tuple[dict, str]:
    run_cli(spam.main, argv)
    output = Path(argv[argv.index("--output_dir") + 1])
    return json.loads((output / "all_results.json").read_text()), capsys.readouterr().out


def plan_line(out: str, key: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(key))


def predicted_labels(run: Path, texts: list[str], capsys) -> list[str]:
    run_cli(predict.main, [str(run), *texts])
    return [line.split("\t")[0] for line in capsys.readouterr().out.splitlines() if "\t" in line]


@pytest.fixture(scope="module")
def spam_runs(model, messages, tmp_path_factory):
    runs = {}
    folder = tmp_path_factory.mktemp("spam-runs")
    for cached in ("true", "false"):
        runs[cached] = folder / f"cache-{cached}"
        run_cli(spam.main, spam_argv(model, messages, runs[cached], "--cache_frozen", cached))
    return runs


def test_cached_spam_run_matches_the_uncached_run(spam_runs, messages, capsys):
    cached = json.loads((spam_runs["true"] / "all_results.json").read_text())
    uncached = json.loads((spam_runs["false"] / "all_results.json").read_text())
    assert cached["frozen_cache"] is True and uncached["frozen_cache"] is False
    assert cached["frozen_cache_missed_calls"] == 0 and cached["frozen_cache_served_calls"] > 0
    for split, size in (("eval", 24), ("test", 48)):
        assert abs(cached[f"{split}_accuracy"] - uncached[f"{split}_accuracy"]) <= 1 / size + 1e-9, split
    assert uncached["test_accuracy"] > 0.6  # it learnt something: equal accuracies are not both chance
    texts = [row["text"] for row in csv.DictReader(io.StringIO(messages.read_text(encoding="utf-8")))][::10]
    assert predicted_labels(spam_runs["true"], texts, capsys) == predicted_labels(spam_runs["false"], texts, capsys)


def test_the_plan_says_what_is_cached_and_how_large(model, messages, tmp_path, capsys):
    results, out = run_spam(capsys, spam_argv(model, messages, tmp_path / "run", "--max_steps", "2"))
    line = plan_line(out, "frozen cache")
    assert "the embeddings and block 1 of 2" in line and "sequences" in line and "MB float32" in line
    assert "frozen cache: built in" in out and results["frozen_cache"] is True


def test_resuming_a_cached_run_gives_the_uninterrupted_weights(model, messages, tmp_path):
    every_step = ["--save_strategy", "steps", "--save_steps", "12", "--save_total_limit", "10"]
    run_cli(spam.main, spam_argv(model, messages, tmp_path / "whole", *every_step))  # the later --save_strategy wins
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-12", resumed / "checkpoint-12")
    run_cli(spam.main, [*spam_argv(model, messages, resumed, *every_step), "--resume_from_checkpoint", "auto"])
    whole, again = load_file(tmp_path / "whole" / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert whole.keys() == again.keys()
    for name in whole:
        assert torch.equal(whole[name], again[name]), name


def test_label_token_run_is_served_from_the_cache_and_matches(model, messages, tmp_path):
    figures = {}
    for cached in ("true", "false"):
        output = tmp_path / f"label-token-{cached}"
        run_cli(classify.main, spam_argv(model, messages, output, "--cache_frozen", cached, "--split", "0.7,0.1,0.2"))
        figures[cached] = json.loads((output / "all_results.json").read_text())
    assert figures["true"]["frozen_cache_missed_calls"] == 0 and figures["true"]["frozen_cache_served_calls"] > 0
    for split, size in (("eval", 24), ("test", 48)):
        assert abs(figures["true"][f"{split}_accuracy"] - figures["false"][f"{split}_accuracy"]) <= 1 / size + 1e-9


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--cache_frozen_max_gb", "0.000001"], "is over the limit of"),
        (["--trainable", "all"], "--trainable all trains every layer"),
        (["--use_peft", "true"], "LoRA adapters train inside every block"),
    ],
    ids=["over-the-limit", "all", "lora"],
)
def test_the_cache_stays_off_and_the_plan_says_why(model, messages, tmp_path, capsys, flags, reason):
    results, out = run_spam(capsys, spam_argv(model, messages, tmp_path / "run", "--max_steps", "2", *flags))
    line = plan_line(out, "frozen cache")
    assert "off" in line and reason in line
    assert results["frozen_cache"] is False and "frozen cache: built" not in out
