"""Texts longer than the model's context, in training, evaluation, generation and the tools:
each method fits them by its own rule and the run finishes with its results.

A tiny GPT-2 with 128 positions stands in for GPT-2's 1024: the rules are the same, the steps
cheaper. Without the fitting, each of these runs dies (an index past the position embeddings)
in training or after it, and loses its results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_finetune import chat_answer, generate, tiny
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.chat import train as chat_train
from hf_finetune.methods.instruction import train as instruction_train
from hf_finetune.recipes import instruction as instruction_recipe
from hf_finetune.recipes import spanish_chat as chat_recipe

CONTEXT = 128
QUICK = ["--num_train_epochs", "1", "--per_device_train_batch_size", "2", "--report_to", "none",
         "--dataloader_num_workers", "0", "--save_strategy", "no", "--logging_steps", "1", "--seed", "0"]  # fmt: skip
LONG = " ".join(f"word{index}" for index in range(400))  # far over 128 tokens


@pytest.fixture(scope="module")
def short_context_gpt2(tmp_path_factory, gpt2_tokenizer_dir) -> Path:
    output = tmp_path_factory.mktemp("models") / "tiny-gpt2-128"
    tiny.main(["--tokenizer", str(gpt2_tokenizer_dir), "--output", str(output), "--context", str(CONTEXT)])
    return output


def turns(*pairs: tuple[str, str]) -> list[dict]:
    return [turn for user, assistant in pairs for turn in ({"role": "user", "content": user},
                                                           {"role": "assistant", "content": assistant})]  # fmt: skip


def test_chat_without_max_length_fits_long_conversations_and_a_long_heldout_question(short_context_gpt2, tmp_path, capsys):
    rows = [
        {"messages": turns(("Hi?", "Hola."))},
        {"messages": turns(("Dog?", "Perro."), (LONG, "Largo."))},  # its second exchange runs past the context: cut
        {"messages": turns((LONG, "Nada."))},  # its only answer lies past the context: no target left, dropped
        {"messages": turns(("Water?", "Agua."))},
    ]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "chat"
    argv = ["--model_name_or_path", str(short_context_gpt2), "--dataset", str(data), "--output_dir", str(out),
            "--compare", "--heldout_question", LONG, "--heldout_answer", "x", "--max_new_tokens", "8", *QUICK]  # fmt: skip
    run_cli(lambda a: chat_train.main(a, defaults=chat_recipe.DEFAULTS), argv)
    captured = capsys.readouterr()
    assert f"{CONTEXT} tokens (the model's position limit: no --max_length given)" in captured.out
    assert "2 conversation(s) cut, 1 dropped without an answer token" in captured.out  # masked
    assert "lost their first tokens" in captured.err  # the long held-out question, said
    results = json.loads((out / "all_results.json").read_text())
    assert [row["method"] for row in results["methods"]] == ["copy_labels", "masked", "completion_only"]
    for row in results["methods"]:
        assert row["heldout"]["question"] == LONG and isinstance(row["heldout"]["answer"], str)
        assert row["examples"] >= 3, row  # the conversations with an answer inside the context trained
    by_method = {row["method"]: row for row in results["methods"]}
    assert by_method["masked"]["truncated"] == 2 and by_method["masked"]["dropped"] == 1
    assert by_method["completion_only"]["dropped"] == 1  # TRL truncates to the same limit, and drops the same one

    # The saved chat model answers a question longer than its context from the command line.
    run_cli(chat_answer.main, [str(out / "masked"), LONG, "--max_new_tokens", "4", "--json"])
    answered = capsys.readouterr()
    assert json.loads(answered.out)["question"] == LONG and "lost their first tokens" in answered.err
    with pytest.raises(SystemExit) as exit:
        run_cli(generate.main, [str(out / "masked"), "--instruction", "Hi."])
    assert exit.value.code == 2 and "use python -m hf_finetune.chat_answer" in capsys.readouterr().err


def test_instruction_run_answers_test_and_validation_entries_longer_than_the_context(short_context_gpt2, tmp_path, capsys):
    entries = [{"instruction": f"Say {index}.", "input": "", "output": str(index)} for index in range(16)]
    # In file order: train 0-7, test 8-11, validation 12-15.
    entries[9] = {"instruction": LONG, "input": LONG, "output": "long"}  # a test entry
    entries[12] = {"instruction": LONG, "input": "", "output": "long"}  # the fixed validation entry
    data = tmp_path / "entries.json"
    data.write_text(json.dumps(entries))
    out = tmp_path / "instruction"
    argv = ["--model_name_or_path", str(short_context_gpt2), "--dataset", str(data), "--output_dir", str(out),
            "--split", "0.5,0.25,0.25", "--max_length", "4096", "--max_new_tokens", "100", "--sample_max_new_tokens", "8",
            "--eval_strategy", "epoch", "--train_eval_samples", "2", *QUICK]  # fmt: skip
    run_cli(lambda a: instruction_train.main(a, defaults=instruction_recipe.DEFAULTS), argv)
    captured = capsys.readouterr()
    assert f"{CONTEXT} tokens (the model's position limit: --max_length 4096 is above it)" in captured.out
    assert "lost the end of their request" in captured.err
    results = json.loads((out / "all_results.json").read_text())
    responses = json.loads((out / "test_responses.json").read_text())
    assert len(responses) == 4 and any(row["instruction"] == LONG for row in responses)
    assert [sample["step"] for sample in results["validation_samples"]] == [0, 4], "answered before and after training"
    assert LONG in results["validation_samples"][0]["prompt"]

    # The generate tool fits a long instruction the same way.
    run_cli(generate.main, [str(out), "--instruction", LONG, "--input", LONG, "--max_new_tokens", "100"])
    assert "lost the end of their request" in capsys.readouterr().err


def test_an_adapter_only_lora_run_is_a_base_model_for_another_run(short_context_gpt2, tmp_path, capsys):
    entries = [{"question": f"Say {index}.", "answer": str(index)} for index in range(12)]  # other field names
    data = tmp_path / "entries.jsonl"
    data.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    adapter_run = tmp_path / "lora"
    common = ["--dataset", str(data), "--instruction_column", "question", "--output_column", "answer",
              "--split", "0.5,0.25,0.25", "--max_new_tokens", "4", "--sample_max_new_tokens", "4",
              "--eval_strategy", "no", *QUICK]  # fmt: skip
    run_cli(instruction_train.main, ["--model_name_or_path", str(short_context_gpt2), "--output_dir", str(adapter_run),
                                     "--use_peft", *common])  # fmt: skip
    assert (adapter_run / "adapter_config.json").is_file() and not (adapter_run / "config.json").exists()
    capsys.readouterr()

    # Continue training from it: the adapter is merged into its base, then --trainable (or a new LoRA) trains.
    for extra, name in (([], "full"), (["--use_peft"], "lora_on_lora")):
        out = tmp_path / name
        run_cli(instruction_train.main, ["--model_name_or_path", str(adapter_run), "--output_dir", str(out), *extra, *common])
        assert "LoRA adapter run: base" in capsys.readouterr().out
        responses = json.loads((out / "test_responses.json").read_text())
        assert [row["instruction"] for row in responses] == ["Say 6.", "Say 7.", "Say 8."]
    run_cli(generate.main, [str(tmp_path / "lora_on_lora"), "--instruction", "Say 3.", "--max_new_tokens", "4"])
