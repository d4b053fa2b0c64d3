"""End to end: GRPO with a reward a test can check. A tiny random-init GPT-2 (a 1000-word BPE learnt
from the book's entries) is instruction-tuned on 24 entries, half of them answered with the opening
"Certainly, I am glad to help!", half plainly; GRPO with the built-in reward contains:certainly on
other prompts then makes it open that way on held-out prompts: the mean validation reward (sampled
answers) and the greedy test answers' reward rise. A reward from a Python file and the plumbing of
the run folder are checked on the same run.

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
    print({key: value for key, value in results.items() if "reward" in key or "kl" in key})
    assert results["validation_reward_after"] >= results["validation_reward_before"] + 0.2
    assert results["test_reward_after"] >= results["test_reward_before"] + 0.25
    assert results["validation_kl_before"] == 0 and results["validation_kl_after"] > 0
