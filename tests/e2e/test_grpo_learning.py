"""End to end: GRPO with a reward a test can check. A tiny random-init GPT-2 (a 1000-word BPE learnt
from the book's entries) is instruction-tuned on 24 entries, half of them answered with the opening
"Certainly, I am glad to help!", half plainly; GRPO with the built-in reward contains:certainly on
other prompts then makes it open that way on held-out prompts: the mean validation reward (sampled
answers) and the greedy test answers' reward rise. With a reward model trained on the same module's
pairs (polite opening preferred) as the only reward, the scored test answers improve too. A reward
from a Python file, the run folder, a run resumed from its checkpoint or after SIGTERM (bit-identical
weights, sampling included), LoRA, --seeds with compare, and two processes under `accelerate launch`
are checked on the same instruction run.

Measured 2026-12-06 (AMD EPYC, 2 cores shared with other jobs), 10 GRPO steps, three random
initialisations (tiny's --seed 0, 1, 2): test reward (greedy, 8 prompts) 0.500 -> 1.000, 0.625 ->
1.000, 0.625 -> 1.000; validation reward (sampled, 8 prompts x 4) 0.312 -> 0.812, 0.500 -> 0.906, 0.531
-> 0.844; the module takes about 2.5 minutes, 80 s of it the instruction run:

    LEARNING_TEST_SEED=N python -m pytest tests/e2e/test_grpo_learning.py   # N = 0, 1, 2
"""

from __future__ import annotations

import json
import os

import pytest

from hf_finetune import tiny
from hf_finetune.methods.text.prompt import format_example
from hf_finetune.recipes import grpo, instruction

SEED = os.environ.get("LEARNING_TEST_SEED", "0")  # the random init; to measure the spread over seeds
OPENING = "Certainly, I am glad to help! "
TUNED = 24
QUICK = ["--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--bf16", "false"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def entries(instruction_json):
    return json.loads(instruction_json.read_text())[:TUNED + 40]


@pytest.fixture(scope="module")
def instruction_run(tmp_path_factory, entries, instruction_json):
    folder = tmp_path_factory.mktemp("grpo")
    sft = [dict(entry, output=OPENING + entry["output"]) if index % 2 == 0 else entry
           for index, entry in enumerate(entries[:TUNED])]  # fmt: skip
    texts = folder / "texts.txt"
    texts.write_text("\n".join(format_example(entry) for entry in [*json.loads(instruction_json.read_text()), *sft]))
    model = folder / "tiny-1k"
    tiny.main(["--train_tokenizer_on", str(texts), "--vocab_size", "1000", "--output", str(model), "--seed", SEED])
    data = folder / "sft"
    data.mkdir()
    for split, rows in (("train", sft), ("validation", sft[:2]), ("test", sft[:2])):
        (data / f"{split}.json").write_text(json.dumps(rows))
    output = folder / "instruction"
    instruction.main([
        "--dataset", str(data), "--model_name_or_path", str(model), "--output_dir", str(output),
        "--num_train_epochs", "80", "--learning_rate", "5e-3", "--per_device_train_batch_size", "24",
        "--eval_strategy", "no", "--logging_steps", "20", "--max_new_tokens", "16", *QUICK,
    ])  # fmt: skip
    return output


@pytest.fixture(scope="module")
def prompts(tmp_path_factory, entries):
    """GRPO on 24 new prompts, validated on 8 held-out prompts and tested on 8 more."""
    folder = tmp_path_factory.mktemp("prompts")
    rest = entries[TUNED:]
    for split, rows in (("train", rest[:24]), ("validation", rest[24:32]), ("test", rest[32:40])):
        (folder / f"{split}.json").write_text(json.dumps(rows))
    return folder


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory, instruction_run, prompts):
    output = tmp_path_factory.mktemp("runs") / "grpo"
    results = grpo.main([
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--rewards", "contains:certainly", "--num_generations", "4", "--max_completion_length", "12",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32", "--max_steps", "10",
        "--eval_steps", "5", "--logging_steps", "5", "--learning_rate", "2e-3", *QUICK,
    ])  # fmt: skip
    return output, results


def test_grpo_raises_the_checkable_reward_on_held_out_prompts(grpo_run):
    output, results = grpo_run
    assert results["validation_reward_after"] >= results["validation_reward_before"] + 0.2
    assert results["test_reward_after"] >= results["test_reward_before"] + 0.25
    assert results["validation_kl_before"] == 0 and results["validation_kl_after"] > 0


def test_the_run_folder_holds_the_curves_answers_and_report(grpo_run):
    output, results = grpo_run
    saved = json.loads((output / "all_results.json").read_text())
    validated = [point for point in saved["history"] if "eval_reward" in point]
    assert validated[0]["step"] == 0 and len(validated) >= 3, "the validation curve, from before training on"
    assert any("train_kl" in point for point in saved["history"])
    rows = json.loads((output / "grpo_answers.json").read_text())
    assert len(rows) == 8 and {"answer_before", "answer_after", "reward_before", "reward_after"} <= set(rows[0])
    assert sum(row["reward_after"] for row in rows) / 8 == pytest.approx(results["test_reward_after"])
    for name in ("report.md", "reward.png", "reward_std.png", "kl.png", "config.yaml", "model.safetensors"):
        assert (output / name).is_file(), name
    report = (output / "report.md").read_text()
    assert "validation: KL to the start model" in report and "After GRPO" in report and rows[0]["output"] in report


def test_a_reward_from_the_users_file_trains(tmp_path, instruction_run, prompts):
    file = tmp_path / "mine.py"
    file.write_text("def polite(prompts, completions, **kwargs):\n"
                    "    return [1.0 if c.strip().startswith('Certainly') else 0.0 for c in completions]\n")
    results = grpo.main([
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(tmp_path / "run"),
        "--rewards", "polite,length:1-100", "--reward_file", str(file), "--max_completion_length", "12",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--max_steps", "2",
        "--eval_strategy", "no", *QUICK,
    ])  # fmt: skip
    assert results["reward_names"] == ["polite", "length:1-100"]
    assert 0 <= results["test_reward_polite_after"] <= 1 and results["validation_reward_after"] is None


def test_with_a_reward_model_the_scored_test_answers_improve(tmp_path, instruction_run, prompts, entries):
    """A reward model trained to prefer the polite opening, then GRPO with it as the only reward."""
    from hf_finetune.recipes import reward

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    rows = [{"instruction": e["instruction"], "input": e["input"], "chosen": OPENING + e["output"],
             "rejected": e["output"]} for e in entries]  # fmt: skip
    for split, part in (("train", rows[:48]), ("validation", rows[48:56]), ("test", rows[56:64])):
        (pairs / f"{split}.json").write_text(json.dumps(part))
    reward_run = tmp_path / "reward"
    scored = reward.main(["--dataset", str(pairs), "--model_name_or_path", str(instruction_run), "--output_dir",
                          str(reward_run), "--num_train_epochs", "3", "--learning_rate", "1e-3",
                          "--per_device_train_batch_size", "8", "--eval_strategy", "no", *QUICK])  # fmt: skip
    assert scored["test_pairwise_accuracy_after"] >= 0.75
    results = grpo.main([
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(tmp_path / "grpo"),
        "--reward_model", str(reward_run), "--max_completion_length", "12", "--per_device_train_batch_size", "16",
        "--per_device_eval_batch_size", "32", "--max_steps", "10", "--eval_steps", "5", "--learning_rate", "2e-3",
        *QUICK,
    ])  # fmt: skip
    assert results["reward_names"] == ["reward_model"]
    assert results["test_reward_after"] > results["test_reward_before"]
    assert results["validation_reward_after"] > results["validation_reward_before"]


def checkpointed(output, instruction_run, prompts, *flags) -> list[str]:
    """4 steps, validated and saved every 2: the runs that stop and resume below."""
    return [
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--rewards", "contains:certainly", "--max_completion_length", "8", "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "32", "--max_steps", "4", "--eval_steps", "2", "--logging_steps", "1", *QUICK,
        "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "2", *flags,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, instruction_run, prompts):
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    return output, grpo.main(checkpointed(output, instruction_run, prompts))


def assert_same_run(reference, resumed_dir, resumed) -> None:
    import torch
    from safetensors.torch import load_file

    output, whole = reference
    weights = load_file(output / "model.safetensors"), load_file(resumed_dir / "model.safetensors")
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    for key in ("validation_reward_after", "validation_kl_after", "test_reward_after"):
        assert resumed[key] == whole[key], key


def test_a_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(tmp_path, instruction_run, prompts,
                                                                         uninterrupted):  # fmt: skip
    """Sampling included: the checkpoint holds the random state, so the resumed steps draw the same answers."""
    import shutil

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(uninterrupted[0] / "checkpoint-2", resumed_dir / "checkpoint-2")
    resumed = grpo.main(checkpointed(resumed_dir, instruction_run, prompts, "--resume_from_checkpoint", "auto"))
    assert_same_run(uninterrupted, resumed_dir, resumed)


def test_sigterm_saves_a_checkpoint_says_so_and_the_resumed_run_ends_as_the_uninterrupted_one(
    tmp_path, instruction_run, prompts, uninterrupted
):
    import sys

    from conftest import sigterm_after_the_first_step

    output = tmp_path / "preempted"
    flags = checkpointed(output, instruction_run, prompts)
    sigterm_after_the_first_step([sys.executable, "recipes/grpo.py", *flags], output, tmp_path)
    resumed = grpo.main([*flags, "--resume_from_checkpoint", "auto"])
    assert_same_run(uninterrupted, output, resumed)


def test_a_lora_run_saves_one_adapter_that_answers_as_the_run_did(tmp_path, instruction_run, prompts, capsys):
    """TRL copies a handed adapter into a second "ref" one; ours starts at zero, so the run drops the copy."""
    from hf_finetune import generate
    from hf_finetune.core.model.saved_runs import is_adapter_run

    output = tmp_path / "lora"
    results = grpo.main([
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--rewards", "contains:certainly", "--max_completion_length", "12", "--per_device_train_batch_size", "8",
        "--max_steps", "2", "--eval_strategy", "no", "--use_peft", "--lora_r", "4", "--learning_rate", "1e-2", *QUICK,
    ])  # fmt: skip
    assert is_adapter_run(output) and not (output / "ref").exists() and "LoRA" in results["trainable"]
    row = json.loads((output / "grpo_answers.json").read_text())[0]
    capsys.readouterr()
    generate.main([str(output), "--instruction", row["instruction"], "--input", row["input"], "--max_new_tokens", "12"])
    assert capsys.readouterr().out.strip() == row["answer_after"].strip()


def test_a_seeds_series_summarises_the_rewards_and_compare_lines_it_up(tmp_path, instruction_run, prompts,
                                                                       uninterrupted, capsys):  # fmt: skip
    from hf_finetune import compare

    series = tmp_path / "series"
    grpo.main([
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(series),
        "--rewards", "contains:certainly", "--max_completion_length", "8", "--per_device_train_batch_size", "8",
        "--max_steps", "2", "--eval_steps", "2", "--seeds", "1,2", *QUICK,
    ])  # fmt: skip
    summary = json.loads((series / "summary.json").read_text())
    assert [run["seed"] for run in summary["runs"]] == [1, 2]
    assert {"test_reward_after", "validation_reward_after", "validation_kl_after"} <= set(summary["metrics"])
    console = capsys.readouterr().out
    assert "test_reward_after" in console and "model_flops" not in console, "the console shows outcomes only"
    compare.main([str(uninterrupted[0]), str(series), "--output", str(tmp_path / "compared")])
    table = (tmp_path / "compared" / "compare.md").read_text()
    assert "| test_reward_after |" in table and "| max_steps |" in table


def test_two_processes_train_one_grpo_run_under_accelerate_launch(tmp_path, instruction_run, prompts):
    """DDP on CPU (gloo): each process samples its share of the prompts; one run folder, one summary."""
    import sys

    from conftest import PROJECT, run_command

    output = tmp_path / "ddp"
    result = run_command([
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(PROJECT / "accelerate_configs" / "cpu.yaml"),
        "--num_processes", "2", "--num_cpu_threads_per_process", "1", str(PROJECT / "recipes" / "grpo.py"),
        "--dataset", str(prompts), "--model_name_or_path", str(instruction_run), "--output_dir", str(output),
        "--rewards", "contains:certainly", "--max_completion_length", "8", "--per_device_train_batch_size", "8",
        "--max_steps", "2", "--eval_steps", "2", *QUICK,
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x2 processes" in result.stdout and result.stdout.count("summary:") == 1
    results = json.loads((output / "all_results.json").read_text())
    assert [point["step"] for point in results["history"] if "eval_reward" in point] == [0, 2]
    assert len(json.loads((output / "grpo_answers.json").read_text())) == 8 and (output / "model.safetensors").is_file()
