"""The GRPO method's rewards and refusals: the built-in checkable rewards on answers worked out by
hand, the user's reward file (its functions, its mistakes), a reward run as a reward, and one
sentence for each bad flag or reward, before any model loads."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.methods.grpo.rewards import load_reward_model, named_rewards
from hf_finetune.methods.text import INSTRUCTION_RUN
from hf_finetune.methods.text.prompt import format_prompt
from hf_finetune.recipes import grpo

ANSWERS = ["Paris.", "  paris  is the capital\n### Instruction:\nmore", "The capital of France is Paris", ""]
REFERENCES = ["Paris.", "Paris is the capital", "Paris.", "Paris."]


def scores(spec: str, reward_file: str | None = None) -> list[float]:
    [reward] = named_rewards([spec], reward_file)
    return reward(["p"] * len(ANSWERS), ANSWERS, reference=REFERENCES)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("exact", [1, 0, 0, 0]),  # the second differs in case and spacing inside: "paris  is" vs "Paris is"
        ("contains:paris", [1, 1, 1, 0]),
        ("avoids:capital", [1, 0, 0, 1]),
        ("length:1-4", [1, 1, 0, 0]),  # the answer ends where a new ### section starts
        ("length:0-0", [0, 0, 0, 1]),
        ("ends:.", [1, 0, 0, 0]),
        ("ends:Paris", [0, 0, 1, 0]),
    ],
)
def test_the_built_in_rewards_score_answers_as_worked_out_by_hand(spec, expected):
    assert scores(spec) == expected


def test_a_reward_file_gives_its_functions_checked(tmp_path):
    file = tmp_path / "mine.py"
    file.write_text(
        "import math\nfrom math import sqrt\n\n"
        "def brevity(prompts, completions, **kwargs):\n    return [1 / (1 + len(c)) for c in completions]\n\n"
        "def wrong_length(prompts, completions, **kwargs):\n    return [1.0]\n\n"
        "def not_numbers(prompts, completions, **kwargs):\n    return ['high'] * len(completions)\n\n"
        "def infinite(prompts, completions, **kwargs):\n    return [math.inf] * len(completions)\n"
    )
    assert scores("brevity", str(file)) == [1 / 7, 1 / (1 + len(ANSWERS[1])), 1 / 31, 1.0]
    with pytest.raises(UserError, match=r"--reward_file: wrong_length returned 1 values for 4 completions\."):
        scores("wrong_length", str(file))
    with pytest.raises(UserError, match=r"--reward_file: not_numbers must return a list of numbers"):
        scores("not_numbers", str(file))
    with pytest.raises(UserError, match=r"--reward_file: infinite returned a value that is not a finite number\."):
        scores("infinite", str(file))
    with pytest.raises(UserError, match=r"'sqrt' is no reward; .* defines brevity, infinite, not_numbers, wrong_length\."):
        scores("sqrt", str(file))  # imported, not defined there


def test_a_reward_run_scores_prompt_and_answer(tmp_path, tiny_gpt2, gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    folder = tmp_path / "reward"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    reward = load_reward_model(str(folder))
    prompts = [format_prompt("Name the capital of France.")] * 2
    batched = reward(prompts, ["Paris.", "It is Paris, of course."])
    alone = [reward(prompts[:1], [answer])[0] for answer in ("Paris.", "It is Paris, of course.")]
    assert batched == pytest.approx(alone, abs=1e-5) and batched[0] != batched[1]
    with pytest.raises(UserError, match="is not a reward model"):
        load_reward_model(str(tiny_gpt2))


def refusal(argv: list, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(grpo.main, [str(token) for token in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "name at least one reward: --rewards (e.g. --rewards exact), or --reward_model RUN."),
        (["--rewards", "shortness"], "--rewards: 'shortness' is no reward; use exact, contains:WORD"),
        (["--rewards", "length:9-3"], "--rewards: 'length:9-3' needs a range of words, length:MIN-MAX"),
        (["--rewards", "length:²-3"], "--rewards: 'length:²-3' needs a range of words"),
        (["--rewards", "contains:"], "--rewards: 'contains:' is no reward"),
        (["--rewards", "exact", "--num_generations", "1"], "--num_generations must be at least 2 (got 1)"),
        (["--rewards", "exact", "--num_generations", "3"], "must be whole groups of --num_generations 3"),
        (["--rewards", "exact", "--temperature", "0"], "--temperature must be above 0 (got 0.0)."),
        (["--rewards", "exact", "--beta=-1"], "--beta must be at least 0 (got -1.0)."),
        (["--rewards", "exact", "--beta", "inf"], "--beta: inf is not a finite number"),
        (["--rewards", "exact", "--max_completion_length", "0"], "--max_completion_length must be at least 1"),
        (["--rewards", "exact", "--output_column", "  "], "--output_column is empty"),
        (["--reward_file", "r.py"], "name at least one reward"),
        (["--rewards", "mine", "--reward_file", "{d}/none.py"], "--reward_file: {d}/none.py does not exist."),
        (["--rewards", "mine", "--reward_file", "{d}/broken.py"], "--reward_file: {d}/broken.py, line 2: "),
        (["--rewards", "mine", "--reward_file", "{d}/raises.py"], "failed to load (ZeroDivisionError"),
        (["--reward_model", "{d}/none"], "--reward_model: {d}/none does not exist"),
        (["--rewards", "exact", "--train_sampling_strategy", "group_by_length"], "no lengths to group by"),
    ],
)
def test_bad_flags_and_rewards_give_one_sentence_before_the_model_loads(flags, message, tmp_path, gpt2_tokenizer_dir,
                                                                        capsys, monkeypatch):  # fmt: skip
    def model_loaded(*args, **kwargs):
        raise AssertionError("the model loaded: the mistake was found too late")

    monkeypatch.setattr("hf_finetune.core.run.method.load_causal_lm", model_loaded)
    (tmp_path / "broken.py").write_text("def mine(prompts, completions, **kwargs):\n    return [1 for c in completions\n")
    (tmp_path / "raises.py").write_text("1 / 0\n")
    output = tmp_path / "run"
    argv = ["--model_name_or_path", gpt2_tokenizer_dir, "--output_dir", output,
            *(flag.format(d=tmp_path) for flag in flags)]  # fmt: skip
    line = refusal(argv, capsys)
    assert message.format(d=tmp_path) in line, line
    assert not output.exists() or not any(output.iterdir())


def test_bad_prompt_data_names_its_entry(tmp_path, gpt2_tokenizer_dir, instruction_json, capsys, monkeypatch):
    monkeypatch.setattr("hf_finetune.core.run.method.load_causal_lm", lambda *args, **kwargs: 1 / 0)
    entries = json.loads(instruction_json.read_text())[:30]
    entries[4]["instruction"] = None
    (tmp_path / "data.json").write_text(json.dumps(entries))
    line = refusal(["--model_name_or_path", gpt2_tokenizer_dir, "--output_dir", tmp_path / "run", "--dataset",
                    tmp_path / "data.json", "--rewards", "exact"], capsys)  # fmt: skip
    assert f"{tmp_path}/data.json, entry 5" in line and "'instruction'" in line, line


def test_the_recipe_says_to_train_the_instruction_run_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert refusal(["--output_dir", tmp_path / "run", "--rewards", "exact"], capsys) == (
        f"error: --model_name_or_path: {INSTRUCTION_RUN} does not exist; train the instruction run first "
        f"(hf-finetune instruction), or start from another causal LM with --model_name_or_path."
    )
