"""--seeds for real, with a tiny GPT-2 head classifier on 32 short messages (16 to train on: 4 steps
per epoch, 2 epochs, evaluated every 3 steps and at each epoch's end, a checkpoint at each epoch's
end): one finished run folder per seed, every seed trained and tested on the same split, a summary
whose figures are the seed folders' own, a seed's config.yaml that trains the same run again, a
rerun that keeps the finished seeds, a series killed inside its second seed that resumes to the
uninterrupted series, and the same series under accelerate launch."""

from __future__ import annotations

import csv
import itertools
import json
import signal
import statistics
import sys

import pytest
import torch
import yaml
from conftest import PROJECT, run_command, start_paused
from safetensors.torch import load_file

from hf_finetune import classify, compare
from hf_finetune.core.errors import run_cli
from hf_finetune.core.report.files import FINISHED_MARKER

pytestmark = pytest.mark.usefixtures("one_thread")
SEEDS = (1, 2)


def write_messages(path) -> None:
    """32 distinct messages, 16 spam and 16 ham, in a seeded order."""
    spam = [f"{verb} {prize}, reply now" for verb, prize in itertools.product(
        ["win", "claim", "free", "urgent"], ["a cash prize", "a free ringtone", "tickets to the final", "a holiday"])]
    ham = [f"{verb} {when}, ok?" for verb, when in itertools.product(
        ["see you", "call me", "meet me", "text me"], ["at lunch", "after work", "tomorrow morning", "at the station"])]
    rows = [(text, "spam") for text in spam] + [(text, "ham") for text in ham]
    rows = [rows[index] for index in (list(range(0, 32, 2)) + list(range(1, 32, 2)))]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([("text", "label"), *rows])


def flags(model, data, output, *extra) -> list[str]:
    return [
        "--method", "head", "--model_name_or_path", str(model), "--dataset", str(data), "--output_dir", str(output),
        "--split", "0.5,0.25,0.25", "--trainable", "all", "--per_device_train_batch_size", "4",
        "--learning_rate", "5e-3", "--num_train_epochs", "2", "--logging_steps", "1", "--eval_strategy", "steps",
        "--eval_steps", "3", "--save_strategy", "steps", "--save_steps", "4", "--disable_tqdm", "true",
        "--dataloader_num_workers", "0", "--report_to", "none", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "messages.csv"
    write_messages(path)
    return path


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory, tiny_gpt2, data):
    output = tmp_path_factory.mktemp("seeds") / "series"
    summary = classify.main(flags(tiny_gpt2, data, output, "--seeds", ",".join(map(str, SEEDS))))
    return output, summary


def seed_results(output) -> dict[int, dict]:
    return {seed: json.loads((output / f"seed-{seed}" / FINISHED_MARKER).read_text()) for seed in SEEDS}


def test_each_seed_trains_its_own_run_into_its_own_folder(seeds_run):
    output, _ = seeds_run
    results = seed_results(output)
    for seed in SEEDS:
        folder = output / f"seed-{seed}"
        for name in ("model.safetensors", "config.yaml", "report.md", "loss.png"):
            assert (folder / name).is_file(), f"{folder / name}"
        assert f"seed: {seed}\n" in (folder / "config.yaml").read_text()
        assert results[seed]["history"], "no logged points"
    # Another seed, other weights and batches: the runs differ.
    assert results[1]["train_loss"] != results[2]["train_loss"]


def test_every_seed_trains_and_tests_on_the_same_split_whose_seed_is_recorded(seeds_run):
    output, summary = seeds_run
    tested = {seed: [json.loads(line)["text"] for line in (output / f"seed-{seed}" / "test_predictions.jsonl")
                     .read_text().splitlines()] for seed in SEEDS}  # fmt: skip
    assert tested[1] == tested[2] and len(tested[1]) == 8
    assert summary["split_seed"] == 42 and summary["seeds_vary_split"] is False  # the classify recipe's --seed
    assert "one data split for every seed (split seed 42)" in (output / "summary.md").read_text()
    assert yaml.safe_load((output / "config.yaml").read_text())["split_seed"] == 42
    for seed in SEEDS:
        assert yaml.safe_load((output / f"seed-{seed}" / "config.yaml").read_text())["split_seed"] == 42
        assert "with split seed 42" in (output / f"seed-{seed}" / "report.md").read_text()
        assert json.loads((output / f"seed-{seed}" / FINISHED_MARKER).read_text())["split_seed"] == 42


def test_compare_says_the_seeds_shared_one_split(seeds_run, capsys):
    output, _ = seeds_run
    capsys.readouterr()
    compare.main([str(output), str(output / "seed-1")])
    assert "2 seeds (1, 2), one data split for all (split seed 42)" in capsys.readouterr().out


def test_a_series_killed_inside_its_second_seed_resumes_to_the_uninterrupted_series(seeds_run, tiny_gpt2, data,
                                                                                     tmp_path, capsys):  # fmt: skip
    output, summary = seeds_run
    killed = tmp_path / "killed"
    # Each seed evaluates at steps 3, 4, 6 and 8: the 7th evaluation is seed 2's at step 6, after its checkpoint-4.
    process = start_paused("evaluate 7", "hf_finetune.classify", flags(tiny_gpt2, data, killed, "--seeds", "1,2"),
                           tmp_path)  # fmt: skip
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "seed-1" / FINISHED_MARKER).is_file() and not (killed / "seed-2" / FINISHED_MARKER).exists()
    assert [path.name for path in (killed / "seed-2").glob("checkpoint-*")] == ["checkpoint-4"]
    capsys.readouterr()
    resumed = classify.main(flags(tiny_gpt2, data, killed, "--seeds", "1,2", "--resume_from_checkpoint", "auto"))
    assert "seed-1, finished earlier, kept" in capsys.readouterr().out
    for seed in SEEDS:
        ours, theirs = (load_file(folder / f"seed-{seed}" / "model.safetensors") for folder in (killed, output))
        assert all(torch.equal(ours[name], theirs[name]) for name in ours), f"seed {seed}"
    # a resumed run averages its own steps' loss, and counts its own steps' work
    timing = ("runtime", "seconds", "per_second", "train_loss", "model_flops", "training_tokens", "training_steps_timed")
    assert {name: figures for name, figures in resumed["metrics"].items() if not any(word in name for word in timing)} \
        == {name: figures for name, figures in summary["metrics"].items() if not any(word in name for word in timing)}


def test_the_summary_figures_are_the_mean_and_spread_of_the_seed_folders(seeds_run):
    output, summary = seeds_run
    assert json.loads((output / "summary.json").read_text()) == summary
    results = seed_results(output)
    for name in ("test_accuracy", "test_f1", "eval_accuracy", "train_loss", "train_runtime_seconds"):
        values = [results[seed][name] for seed in SEEDS]
        assert summary["metrics"][name] == pytest.approx({"mean": statistics.mean(values), "std": statistics.stdev(values),
                                                          "min": min(values), "max": max(values)}), name  # fmt: skip
    assert [run["metrics"]["test_accuracy"] for run in summary["runs"]] == [results[seed]["test_accuracy"] for seed in SEEDS]
    report = (output / "summary.md").read_text()
    assert "| test_accuracy |" in report and "seed 2: [seed-2/]" in report
    for name in ("loss.png", "loss.pdf", "accuracy.png", "accuracy.pdf"):
        assert (output / name).stat().st_size > 0, name


def test_a_seeds_config_yaml_trains_the_same_run_again(seeds_run, tiny_gpt2, tmp_path):
    output, _ = seeds_run
    again = tmp_path / "again"
    results = classify.main(["--config", str(output / "seed-2" / "config.yaml"), "--output_dir", str(again)])
    seed_two = seed_results(output)[2]
    for name in ("train_loss", "test_accuracy", "test_f1", "eval_accuracy"):
        assert results[name] == pytest.approx(seed_two[name], abs=1e-6), name


def test_a_rerun_keeps_the_finished_seeds(seeds_run, tiny_gpt2, data, capsys):
    output, summary = seeds_run
    before = {seed: (output / f"seed-{seed}" / FINISHED_MARKER).stat().st_mtime_ns for seed in SEEDS}
    capsys.readouterr()
    rerun = classify.main(flags(tiny_gpt2, data, output, "--seeds", "1,2"))
    out = capsys.readouterr().out
    assert out.count("finished earlier, kept") == 2 and "plan:" not in out
    assert {seed: (output / f"seed-{seed}" / FINISHED_MARKER).stat().st_mtime_ns for seed in SEEDS} == before
    assert rerun["metrics"] == summary["metrics"]


def test_other_flags_into_the_same_folder_are_refused(seeds_run, tiny_gpt2, data, capsys):
    output, _ = seeds_run
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classify.main, flags(tiny_gpt2, data, output, "--seeds", "1,2,3", "--max_steps", "2"))
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert "max_steps: -1 in" in error and "--overwrite_output_dir" in error
    assert not (output / "seed-3").exists()


def test_under_accelerate_launch_the_seeds_run_one_after_another(tmp_path, tiny_gpt2, data):
    output = tmp_path / "ddp"
    result = run_command(
        [sys.executable, "-m", "accelerate.commands.launch",
         "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
         "--num_processes", "2", "--num_cpu_threads_per_process", "1",
         "-m", "hf_finetune.classify", *flags(tiny_gpt2, data, output, "--seeds", "1,2", "--eval_strategy", "no")],
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("plan:") == 2 and result.stdout.count("x2 processes") == 2  # one plan per seed
    assert result.stdout.index("seed-1, training") < result.stdout.index("seed-2, training")
    summary = json.loads((output / "summary.json").read_text())
    results = seed_results(output)
    assert summary["metrics"]["test_accuracy"]["mean"] == pytest.approx(
        statistics.mean(results[seed]["test_accuracy"] for seed in SEEDS))
    for seed in SEEDS:  # each process scored its share: together every test text once
        assert sum(map(sum, results[seed]["test_confusion_matrix"])) == 8
