"""A tiny random-init Bloom really learns the five Spanish pairs; `--compare` end to end.

The learning test trains 30 epochs, one thread. Three random initialisations (tiny's --seed 0, the
fixture's, then 1 and 2), the first epoch after which all five answers are exact, masked and
completion_only alike: 13, 24, 21; every seed then stays at 5/5 to epoch 30 (at 25 epochs the
worst seed reached 5/5 at epoch 21 and seed 0 fell back to 4/5 twice after reaching it). Each run
took 4-7 s of a quiet core, about 20 s on a loaded one (2026-12-01, AMD EPYC, 2 shared cores):

    LEARNING_TEST_SEED=N python -m pytest tests/e2e/test_chat_learning.py -k answers_every   # N = 0, 1, 2
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, run_command

from hf_finetune.methods.chat.conversations import ChatForm, render_text

sys.path.insert(0, str(PROJECT / "recipes"))
import spanish_chat  # noqa: E402

EPOCHS = 30
SEED = os.environ.get("LEARNING_TEST_SEED", "0")  # the random init; to measure the spread over seeds
# Overfitting five pairs with a 2-block, 128-wide random model: a high learning rate, full batches.
FAST = [
    "--learning_rate", "1e-2",
    "--per_device_train_batch_size", "5",
    "--logging_steps", "5",
    "--disable_tqdm", "true",
    "--use_cpu", "true",
]


@pytest.fixture(scope="module")
def tiny_bloom(tmp_path_factory) -> Path:
    """Random-init 2x128 Bloom with a small BPE tokenizer (<s> </s> <pad> <unk>) learnt from the demo."""
    from hf_finetune import tiny

    folder = tmp_path_factory.mktemp("chat-model")
    corpus = folder / "demo.txt"
    held_out = [spanish_chat.DEMO[0][0].__class__("user", spanish_chat.DEFAULTS["heldout_question"])]
    texts = [render_text(turns, ChatForm()) for turns in spanish_chat.DEMO] + [render_text(held_out, ChatForm())]
    corpus.write_text("\n".join(texts * 3), encoding="utf-8")
    output = folder / "tiny-bloom"
    tiny.main(["--arch", "bloom", "--train_tokenizer_on", str(corpus), "--vocab_size", "300", "--output", str(output),
               "--seed", SEED])
    return output


@pytest.mark.slow
@pytest.mark.parametrize("method", ["masked", "completion_only"])
def test_tiny_bloom_answers_every_training_question_exactly(tiny_bloom, tmp_path, one_thread, method):
    from hf_finetune.methods.chat.train import main

    argv = ["--model_name_or_path", str(tiny_bloom), "--method", method, "--output_dir", str(tmp_path / method),
            "--num_train_epochs", str(EPOCHS), *FAST]
    [row] = main(argv, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO)
    expected = [turns[-1].content for turns in spanish_chat.DEMO]
    assert [item["answer"] for item in row["training_answers"]] == expected
    assert row["loss_tokens"] < row["tokens"] / 3  # only answers and their eos carry loss
    exact = [point["exact"] for point in row["exact_answers_per_epoch"]]
    assert len(exact) == EPOCHS and exact[0] < 5 and exact[-1] == 5
    assert row["first_epoch_all_answers_exact"] == 1 + exact.index(5)
    saved = json.loads((tmp_path / method / "all_results.json").read_text())
    assert saved["methods"][0]["training_exact"] == 5

    # The saved run answers through its own chat template, as a user would ask it.
    from hf_finetune.methods.chat.answers import answer_run as answer

    questions = [turns[0].content for turns in spanish_chat.DEMO]
    assert answer(tmp_path / method, questions) == expected


@pytest.mark.slow
def test_compare_writes_one_table_with_three_measured_rows(tiny_bloom, tmp_path):
    output = tmp_path / "compare"
    result = run_command(
        [sys.executable, "recipes/spanish_chat.py", "--compare", "--model_name_or_path", str(tiny_bloom),
         "--output_dir", str(output), "--num_train_epochs", "10", *FAST],
        OMP_NUM_THREADS="1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((output / "comparison.json").read_text())
    assert [row["method"] for row in rows] == ["copy_labels", "masked", "completion_only"]
    for row in rows:
        assert row["train_runtime_seconds"] > 0
        assert math.isfinite(row["final_train_loss"]) and row["final_train_loss"] > 0
        assert len(row["training_answers"]) == 5 and isinstance(row["heldout"]["answer"], str)
        assert (output / row["method"] / "model.safetensors").is_file()
    copy, masked, completion = (row["loss_tokens"] for row in rows)
    assert copy == rows[0]["tokens"] - 5 and masked == completion < copy
    table = (output / "comparison.md").read_text()
    assert sum(line.startswith(("| copy_labels |", "| masked |", "| completion_only |")) for line in table.splitlines()) == 3
    assert (output / "loss.png").is_file() and (output / "loss.pdf").is_file()
    # The run's config.yaml reruns it: special_tokens and max_new_tokens are kept despite their names.
    from hf_finetune.core.parsing import parse_arguments
    from hf_finetune.methods.chat.train import ARGUMENTS as CHAT_ARGUMENTS

    _, chat_args, _, training_args, _ = parse_arguments(CHAT_ARGUMENTS, ["--config", str(output / "config.yaml")])
    assert chat_args.compare and chat_args.human_tag == "\n\n### Human:" and training_args.num_train_epochs == 10
    saved = (output / "config.yaml").read_text()
    assert "special_tokens: false" in saved and "max_new_tokens: 16" in saved


def test_unknown_method_is_one_clear_error(tmp_path, capsys):
    from hf_finetune.core.errors import run_cli
    from hf_finetune.methods.chat.train import main

    argv = ["--method", "copy", "--output_dir", str(tmp_path / "x")]
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda args: main(args, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO), argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: --method: 'copy' is not one of copy_labels, masked, completion_only.\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_multi_turn_jsonl_trains_with_trl_messages_and_every_answer_is_a_target(tiny_bloom, tmp_path, one_thread):
    from hf_finetune.methods.chat.train import main

    rows = [
        {"messages": [{"role": "user", "content": 'How do you say "dog" in Spanish?'},
                      {"role": "assistant", "content": "perro"},
                      {"role": "user", "content": 'And "water"?'},
                      {"role": "assistant", "content": "agua"}]},
        {"messages": [{"role": "user", "content": 'How do you say "tree" in Spanish?'},
                      {"role": "assistant", "content": "árbol"}]},
    ]
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    common = ["--model_name_or_path", str(tiny_bloom), "--dataset", str(data), "--num_train_epochs", "1", *FAST]
    [trl] = main([*common, "--method", "completion_only", "--output_dir", str(tmp_path / "trl")],
                 defaults=spanish_chat.DEFAULTS)
    [ours] = main([*common, "--method", "masked", "--output_dir", str(tmp_path / "masked")],
                  defaults=spanish_chat.DEFAULTS)
    assert trl["format"] == "messages + assistant_only_loss"
    assert trl["loss_tokens"] == ours["loss_tokens"] > 0
    assert [item["expected"] for item in trl["training_answers"]] == ["agua", "árbol"]  # the last answer of each


@pytest.mark.parametrize("method", ["masked", "completion_only"])
def test_a_max_length_that_leaves_no_answer_is_one_clear_error(tiny_bloom, tmp_path, method):
    from hf_finetune.core.errors import UserError
    from hf_finetune.methods.chat.train import main

    argv = ["--model_name_or_path", str(tiny_bloom), "--method", method, "--max_length", "5",
            "--output_dir", str(tmp_path / "x"), *FAST]
    with pytest.raises(UserError, match=r"^--max_length 5 leaves no conversation with an answer token to learn\.$"):
        main(argv, defaults=spanish_chat.DEFAULTS, demo=spanish_chat.DEMO)
    assert not (tmp_path / "x" / "all_results.json").exists()
