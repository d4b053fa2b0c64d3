"""End to end: a reward model learns the book's preference (the polite answer over the impolite
one) from a tiny random-init GPT-2, ranks held-out pairs well above chance, and its run folder
scores answers through `hf-finetune score` and pipeline("text-classification") alike; a LoRA run
saves an adapter that scores as the run measured it.

The run: the book's 1100 pairs (6 with chosen == rejected left out) cut in file order into 929
train / 55 validation / 110 test; one epoch at 1e-3, batches of 16 pairs (59 steps), fp32 on one
thread, so that the figures are the same on every machine.

Measured 2026-12-06 (AMD EPYC, 2 cores shared with other jobs, load 3.7), three random
initialisations (tiny's --seed 0, 1, 2): test pairwise accuracy 0.882, 0.827, 0.782 (0.473, 0.500,
0.518 before training); median test margin 1.17, 0.87, 0.49:

    LEARNING_TEST_SEED=N python -m pytest tests/e2e/test_reward_learning.py   # N = 0, 1, 2
"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest
from conftest import PROJECT, python_module, run_command

from hf_finetune import score, tiny
from hf_finetune.core.model.saved_runs import is_adapter_run
from hf_finetune.methods.text.prompt import format_prompt
from hf_finetune.recipes import reward

SEED = os.environ.get("LEARNING_TEST_SEED", "0")  # the random init; to measure the spread over seeds
BOOK_FILE = ("data", "llms_from_scratch_instruction", "instruction-data-with-preference.json")
QUICK = ["--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--bf16", "false",
         "--drop_identical_pairs", "true", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32",
         "--learning_rate", "1e-3", "--logging_steps", "10"]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def book_json():
    from conftest import shared_path

    return shared_path(*BOOK_FILE)


@pytest.fixture(scope="module")
def model(tmp_path_factory, gpt2_tokenizer_dir):
    output = tmp_path_factory.mktemp("models") / f"tiny-{SEED}"
    tiny.main(["--tokenizer", str(gpt2_tokenizer_dir), "--output", str(output), "--seed", SEED])
    return output


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory, model, book_json):
    output = tmp_path_factory.mktemp("runs") / "reward"
    results = reward.main(["--dataset", str(book_json), "--model_name_or_path", str(model), "--output_dir", str(output),
                           "--num_train_epochs", "1", "--eval_steps", "20", *QUICK])  # fmt: skip
    return output, results


def test_the_reward_model_ranks_held_out_pairs_well_above_chance(reward_run):
    output, results = reward_run
    assert results["sizes"] == {"train": 929, "validation": 55, "test": 110}
    assert results["test_pairwise_accuracy_after"] >= 0.7, results["test_pairwise_accuracy_after"]
    assert results["test_pairwise_accuracy_after"] >= results["test_pairwise_accuracy_before"] + 0.2
    assert results["eval_pairwise_accuracy_after"] >= 0.65
    assert results["test_margin_median_after"] > 0 and results["test_pairwise_nll_after"] < math.log(2)
    assert 0 <= results["test_pairwise_ece_after"] <= 1

    saved = json.loads((output / "all_results.json").read_text())
    validated = [point for point in saved["history"] if "eval_accuracy" in point]
    assert len(validated) >= 3 and any("train_accuracy" in point for point in saved["history"])
    rows = json.loads((output / "test_scores.json").read_text())
    assert len(rows) == 110
    assert sum(row["chosen_score_after"] > row["rejected_score_after"] for row in rows) / 110 == pytest.approx(
        results["test_pairwise_accuracy_after"]
    )
    for name in ("report.md", "margins.png", "reliability.png", "loss.png", "accuracy.png", "margin.png",
                 "config.yaml", "model.safetensors"):  # fmt: skip
        assert (output / name).is_file(), name
    report = (output / "report.md").read_text()
    assert "pairwise accuracy" in report and "ECE of sigmoid(margin)" in report and rows[0]["chosen"] in report
    assert "## Leakage: duplicate texts" in report and "leakage" in results


def test_score_and_pipeline_give_the_scores_the_run_measured(reward_run, capsys):
    from transformers import pipeline

    output, _ = reward_run
    rows = json.loads((output / "test_scores.json").read_text())
    row = rows[0]
    scores = score.main([str(output), row["instruction"], row["chosen"], row["rejected"], "--input", row["input"]])
    assert scores == pytest.approx([row["chosen_score_after"], row["rejected_score_after"]], abs=1e-3)
    capsys.readouterr()
    scorer = pipeline("text-classification", model=str(output))
    [result] = scorer(format_prompt(row["instruction"], row["input"]) + row["chosen"])
    assert result["score"] == pytest.approx(scores[0], abs=1e-3)


def test_a_lora_run_saves_an_adapter_that_scores_as_the_run_measured(tmp_path, model, book_json):
    output = tmp_path / "lora"
    reward.main(["--dataset", str(book_json), "--model_name_or_path", str(model), "--output_dir", str(output),
                 "--use_peft", "true", "--max_steps", "4", "--eval_strategy", "no", "--split", "0.9,0.05,0.05",
                 *QUICK])  # fmt: skip
    assert is_adapter_run(output)
    row = json.loads((output / "test_scores.json").read_text())[0]
    # A fresh process, as a user meets it (transformers reports a load once per process).
    result = python_module("hf_finetune", "score", str(output), row["instruction"], row["chosen"], "--input", row["input"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split("\t")[0]) == pytest.approx(row["chosen_score_after"], abs=1e-3)
    # the base model has no reward head (the adapter holds it): no report of it as missing
    assert "MISSING" not in result.stderr


@pytest.fixture(scope="module")
def small_pairs(tmp_path_factory, book_json):
    """48 train, 8 validation and 8 test pairs of the book's, for the runs that check plumbing, not learning."""
    pairs = tmp_path_factory.mktemp("small") / "pairs"
    pairs.mkdir()
    book = [entry for entry in json.loads(book_json.read_text())[:70] if entry["chosen"] != entry["rejected"]]
    for split, rows in (("train", book[:48]), ("validation", book[48:56]), ("test", book[56:64])):
        (pairs / f"{split}.json").write_text(json.dumps(rows))
    return pairs


def test_two_processes_train_one_reward_model_under_accelerate_launch(tmp_path, model, small_pairs):
    """DDP on CPU (gloo): 48 pairs in batches of 4 per process make one epoch in 6 steps, one run folder."""
    pairs = small_pairs
    output = tmp_path / "ddp"
    result = run_command([
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
        "--num_processes", "2", "--num_cpu_threads_per_process", "1", str(PROJECT / "recipes" / "reward.py"),
        "--model_name_or_path", str(model), "--dataset", str(pairs), "--output_dir", str(output), *QUICK,
        "--max_steps", "6", "--eval_steps", "3", "--per_device_train_batch_size", "4", "--max_length", "256",
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x2 processes" in result.stdout and result.stdout.count("summary:") == 1
    results = json.loads((output / "all_results.json").read_text())
    assert results["history"][-1]["step"] == 6 and results["history"][-1]["epoch"] == 1.0
    assert len(json.loads((output / "test_scores.json").read_text())) == 8
    assert (output / "model.safetensors").is_file() and not list(output.glob("checkpoint-*"))


def test_the_model_card_describes_the_reward_run(reward_run, book_json):
    from transformers import TrainingArguments

    from hf_finetune.methods.reward.card import reward_card
    from hf_finetune.methods.text.pairs import load_preference_data

    output, results = reward_run
    data = load_preference_data(str(book_json), None, None, drop_identical_pairs=True)
    args = TrainingArguments(output_dir=str(output), hub_model_id="me/reward-tiny", report_to="none")
    card = reward_card("gpt2", data, results, results["trainable"], args)
    assert card.startswith("---\n") and "pipeline_tag: text-classification" in card and "reward-model" in card
    assert "pipeline('text-classification', model='me/reward-tiny')" in card
    assert f"{results['test_pairwise_accuracy_after']:.4f}" in card and "![margins](margins.png)" in card


def test_a_seeds_series_summarises_the_reward_figures_and_compare_lines_it_up(tmp_path, model, small_pairs, capsys):
    from hf_finetune import compare

    flags = ["--model_name_or_path", str(model), "--dataset", str(small_pairs), *QUICK, "--max_steps", "3",
             "--eval_steps", "3", "--per_device_train_batch_size", "4", "--max_length", "256"]  # fmt: skip
    reward.main([*flags, "--output_dir", str(tmp_path / "series"), "--seeds", "1,2"])
    summary = json.loads((tmp_path / "series" / "summary.json").read_text())
    assert [run["seed"] for run in summary["runs"]] == [1, 2]
    assert all("test_pairwise_accuracy_after" in run["metrics"] for run in summary["runs"])
    reward.main([*flags, "--output_dir", str(tmp_path / "single"), "--seed", "3"])
    capsys.readouterr()
    compare.main([str(tmp_path / "single"), str(tmp_path / "series"), "--output", str(tmp_path / "compared")])
    table = (tmp_path / "compared" / "compare.md").read_text()
    assert "| test_pairwise_accuracy_after |" in table and "| test_pairwise_ece_after |" in table
