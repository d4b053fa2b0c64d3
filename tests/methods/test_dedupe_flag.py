"""--dedupe as a user meets it, through each command's main(argv): a bad value, and data that
--dedupe would leave without a split, each one sentence and exit status 2 before any model loads,
with nothing written."""

from __future__ import annotations

import csv
import json

import pytest

from hf_finetune import classify
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.instruction import train as instruction
from hf_finetune.recipes import spam, spanish_chat

COMMANDS = {
    "spam": spam.main,
    "classify": classify.main,
    "instruction": instruction.main,
    "chat": spanish_chat.main,
}


def no_model_may_load(monkeypatch):
    def loaded(*args, **kwargs):
        raise AssertionError("a model loaded: the mistake was found too late")

    for module in ("hf_finetune.methods.classify.head.train.load_classifier", "hf_finetune.core.run.method.load_causal_lm"):
        monkeypatch.setattr(module, loaded)


def one_error_line(capsys, exit_info) -> str:
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in error
    lines = [line for line in error.splitlines() if line.startswith("error:")]  # not the progress bars of datasets
    assert len(lines) == 1, error[-1500:]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_dedupe_value_is_one_sentence(command, tmp_path, capsys, monkeypatch):
    no_model_may_load(monkeypatch)
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(COMMANDS[command], ["--dedupe", "maybe", "--output_dir", str(output)])
    line = one_error_line(capsys, exit_info)
    assert line.startswith("error: --dedupe: Truthy value expected: got maybe but expected one of yes/no, true/false")
    assert not output.exists()


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, ["text", "label"])
        writer.writeheader()
        writer.writerows(rows)


def test_dedupe_that_empties_the_validation_split_of_a_classifier_stops_before_the_model(tmp_path, capsys, monkeypatch):
    no_model_may_load(monkeypatch)
    folder = tmp_path / "data"
    folder.mkdir()
    test = [{"text": f"message number {i} about the {word}", "label": label}
            for i, (word, label) in enumerate([("prize", "spam"), ("meeting", "ham"), ("cash", "spam"), ("lunch", "ham")])]  # fmt: skip
    write_csv(folder / "train.csv", [{"text": f"a text of its own, {i}th of them", "label": ["ham", "spam"][i % 2]} for i in range(8)])
    write_csv(folder / "test.csv", test)
    write_csv(folder / "validation.csv", [{**row, "text": row["text"].upper() + "!"} for row in test[:2]])
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(classify.main, ["--dataset", str(folder), "--dedupe", "--output_dir", str(output)])
    assert one_error_line(capsys, exit_info) == (
        "error: --dedupe: all 2 texts of the validation split repeat texts of the test split, so none is left; "
        "drop --dedupe or give the validation split texts of its own."
    )
    assert not output.exists() or not any(output.iterdir())


def test_dedupe_that_empties_the_train_split_of_instruction_data_stops_before_the_model(tmp_path, capsys, monkeypatch):
    no_model_may_load(monkeypatch)
    folder = tmp_path / "data"
    folder.mkdir()
    entries = [{"instruction": f"Name the colour number {i}.", "input": "", "output": f"Colour {i} is blue."} for i in range(4)]
    (folder / "train.json").write_text(json.dumps(entries[:2]), encoding="utf-8")
    (folder / "validation.json").write_text(json.dumps(entries[2:]), encoding="utf-8")
    (folder / "test.json").write_text(json.dumps(entries[:2]), encoding="utf-8")
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(instruction.main, ["--dataset", str(folder), "--dedupe", "--output_dir", str(output)])
    assert one_error_line(capsys, exit_info) == (
        "error: --dedupe: all 2 entries of the train split repeat entries of the test or validation split, so none "
        "is left; drop --dedupe or give the train split entries of its own."
    )
    assert not output.exists() or not any(output.iterdir())


def test_dedupe_of_chat_data_that_only_repeats_the_held_out_exchange_stops_before_the_model(
    tmp_path, capsys, monkeypatch, gpt2_tokenizer_dir
):
    no_model_may_load(monkeypatch)
    data = tmp_path / "chat.jsonl"
    rows = [{"prompt": 'How do you say "day" in Spanish?', "completion": "día"},
            {"prompt": 'how do you say "DAY" in spanish', "completion": "Día."}]  # fmt: skip
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        # The chat method reads its data with the tokenizer (its special tokens), never with the model.
        argv = ["--model_name_or_path", str(gpt2_tokenizer_dir), "--dataset", str(data), "--dedupe", "--output_dir", str(output)]
        run_cli(spanish_chat.main, argv)
    assert one_error_line(capsys, exit_info) == (
        "error: --dedupe: all 2 conversations of the train split repeat conversations of the held-out split, so "
        "none is left; drop --dedupe or give the train split conversations of its own."
    )
    assert not output.exists() or not any(output.iterdir())
