"""predict and generate at their edges, met as a user meets them (`run_cli(main, argv)`): a run
folder's own files damaged after training (label_token.json key by key), texts placed after the
flags or not UTF-8, a plain model folder instead of a run, a --max_new_tokens beyond the context.
The run folders are a random-init model with the files a run leaves (no training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hf_finetune import generate, predict, tiny
from hf_finetune.core.errors import run_cli

SETTINGS = {"label_words": ["bad", "good"], "label_token_ids": [[14774], [11274]], "separator": "<|endoftext|>",
            "separator_ids": [50256], "label_names": ["bad", "good"], "max_length": 64, "temperature": 1.0}  # fmt: skip


def label_token_run(tiny_gpt2: Path, folder: Path, **changes) -> Path:
    """A finished label-token run as predict reads it: the model, config.yaml, all_results.json, label_token.json."""
    folder.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_gpt2 / name, folder / name)
    (folder / "model.safetensors").symlink_to(tiny_gpt2 / "model.safetensors")
    (folder / "config.yaml").write_text("method: label-token\n")
    (folder / "all_results.json").write_text(json.dumps({"test_accuracy": 0.5}))
    (folder / "label_token.json").write_text(json.dumps({**SETTINGS, **changes}))
    return folder


def finished(main, argv: list, capsys, code: int = 0) -> tuple[str, str]:
    """`main(argv)` through run_cli: its exit status checked, (stdout, stderr) returned."""
    status = 0
    try:
        run_cli(main, [str(token) for token in argv])
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    assert status == code and "Traceback" not in err, err[-2000:]
    return out, err


def refusal(main, argv: list, capsys) -> str:
    out, err = finished(main, argv, capsys, code=2)
    assert out == ""
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    "damage, words",
    [
        ('{"label_words": ["bad", ', "label_token.json: cannot be read (JSONDecodeError)"),
        (b'{"label_words": ["caf\xe9"]}', "label_token.json: cannot be read (UnicodeDecodeError)"),
        ("[1, 2]", "label_token.json: holds a list, not an object"),
        ({"temperature": "hot"}, "label_token.json, key 'temperature': 'hot' is not a positive finite number"),
        ({"temperature": -0.5}, "key 'temperature': -0.5 is not a positive finite number"),
        ({"temperature": 0}, "key 'temperature': 0 is not a positive finite number"),
        ({"temperature": float("nan")}, "key 'temperature': nan is not a positive finite number"),
        ({"temperature": True}, "key 'temperature': True is not a positive finite number"),
        ({"label_words": ["bad"], "label_token_ids": [[14774]]}, "key 'label_words': ['bad'] are not two or more"),
        ({"label_words": ["bad", "bad"]}, "key 'label_words': ['bad', 'bad'] are not two or more different words"),
        ({"label_words": "bad,good"}, "key 'label_words': 'bad,good' is not a list of label words"),
        ({"label_token_ids": [[14774]]}, "key 'label_token_ids': [[14774]] is not one non-empty list of token ids"),
        ({"label_token_ids": [[14774], []]}, "key 'label_token_ids'"),
        ({"label_token_ids": [[14774], [-1]]}, "key 'label_token_ids'"),
        ({"label_token_ids": [[14774], [14774]]}, "key 'label_token_ids': [[14774], [14774]]: two label words have"),
        ({"label_token_ids": [[14774], [99999]]}, "key 'label_token_ids': token id 99999 is outside the model's 50257"),
        ({"separator_ids": []}, "key 'separator_ids': [] is not a non-empty list of token ids"),
        ({"separator": None}, "key 'separator': None is not a non-empty text"),
        ({"max_length": "64"}, "key 'max_length': '64' is not a whole number of tokens above the 2"),
        ({"max_length": 2}, "key 'max_length': 2 is not a whole number of tokens above the 2"),
    ],
)
def test_a_damaged_label_token_file_names_the_file_and_key_before_predicting(damage, words, tiny_gpt2, tmp_path,
                                                                              capsys):  # fmt: skip
    run = label_token_run(tiny_gpt2, tmp_path / "run", **(damage if isinstance(damage, dict) else {}))
    if isinstance(damage, bytes):
        (run / "label_token.json").write_bytes(damage)
    elif isinstance(damage, str):
        (run / "label_token.json").write_text(damage)
    line = refusal(predict.main, [run, "a fine film"], capsys)
    assert line.startswith(f"error: {run / 'label_token.json'}") and words in line, line
    assert line.endswith("restore it or train the run again.")


def test_a_run_without_a_temperature_predicts_with_none(tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run")
    settings = json.loads((run / "label_token.json").read_text())
    del settings["temperature"]  # a run from before --calibrate
    (run / "label_token.json").write_text(json.dumps(settings))
    out, _ = finished(predict.main, [run, "a fine film"], capsys)
    assert out.split("\t")[0] in ("bad", "good") and out.endswith("\ta fine film\n")


@pytest.mark.parametrize("argv", [["--json", "a fine film", "a dull one"], ["a fine film", "--json", "a dull one"],
                                  ["a fine film", "a dull one", "--json"]])  # fmt: skip
def test_texts_may_stand_before_or_after_the_flags(argv, tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run")
    out, _ = finished(predict.main, [run, *argv], capsys)
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["a fine film", "a dull one"]


def test_a_text_that_is_not_utf8_is_named_by_its_argument_not_by_a_flag_before_it(tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run")
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands such bytes over
    line = refusal(predict.main, [run, "--json", undecodable], capsys)
    assert line.startswith("error: argument 3 is not UTF-8 text (a text to classify") and "--json" not in line


def test_texts_and_a_file_together_are_refused(tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run")
    (tmp_path / "texts.txt").write_text("a dull one\n")
    line = refusal(predict.main, [run, "--file", tmp_path / "texts.txt", "a fine film"], capsys)
    assert line == f"error: --file {tmp_path / 'texts.txt'} and 1 text(s) on the command line: give the texts one " \
                   f"way, not both."  # fmt: skip


def test_a_plain_model_folder_is_named_as_a_model_no_run_trained(tiny_gpt2, capsys):
    line = refusal(predict.main, [tiny_gpt2, "a fine film"], capsys)
    assert f"{tiny_gpt2} holds a model (GPT2LMHeadModel) that no run of hf-finetune trained" in line
    assert "not a classifier (head method) or a label-token classifier" in line and "text generator" not in line
    assert f"train one with --model_name_or_path {tiny_gpt2}" in line


def test_a_max_length_beyond_the_models_positions_reads_the_positions_it_has(tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run", max_length=100000)  # the model has 1024 positions
    out, err = finished(predict.main, [run, "word " * 1500], capsys)
    assert out.split("\t")[0] in ("bad", "good")
    assert "note: 1 text(s) longer than the 1022 tokens the model reads were classified by their first 1022" in err


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory, gpt2_tokenizer_dir) -> Path:
    output = tmp_path_factory.mktemp("models") / "context-64"
    tiny.main(["--tokenizer", str(gpt2_tokenizer_dir), "--context", "64", "--layers", "1", "--width", "32",
               "--output", str(output)])  # fmt: skip
    return output


def test_generate_says_when_the_context_cuts_the_answer(short_context_model, capsys):
    out, err = finished(generate.main, [short_context_model, "--instruction", "Say hi.", "--max_new_tokens",
                                        "99999999999"], capsys)  # fmt: skip
    assert "note: the model reads at most 64 positions and the prompt takes 32, so the answer is cut at 32 tokens, " \
           "fewer than --max_new_tokens 99999999999." in err  # fmt: skip
    _, err = finished(generate.main, [short_context_model, "--instruction", "Say hi.", "--max_new_tokens", "3"], capsys)
    assert "note:" not in err


@pytest.fixture(scope="module")
def head_model(tmp_path_factory, tiny_gpt2) -> Path:
    """tiny_gpt2 as a two-class sequence classifier (bad, good), saved once."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path_factory.mktemp("models") / "head"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, id2label={0: "bad", 1: "good"},
                                                               pad_token_id=50256)  # fmt: skip
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_gpt2 / name, folder / name)
    return folder


@pytest.mark.parametrize("id2label", [None, {"0": 5, "1": "good"}, {"0": "bad", "2": "good"}, {"0": "", "1": "good"}])
def test_a_head_runs_damaged_label_names_name_the_file_and_key(id2label, head_model, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(head_model, run)
    (run / "config.yaml").write_text("method: head\n")
    config = json.loads((run / "config.json").read_text())
    out, _ = finished(predict.main, [run, "a fine film"], capsys)
    assert out.split("\t")[0] in ("bad", "good")
    config.pop("label2id", None)
    config["id2label"] = id2label
    (run / "config.json").write_text(json.dumps({key: value for key, value in config.items() if value is not None}))
    line = refusal(predict.main, [run, "a fine film"], capsys)
    assert line.startswith(f"error: {run / 'config.json'}, key 'id2label': {id2label!r} is not a name for each of "
                           f"the model's 2 classes (0 to 1)"), line  # fmt: skip


@pytest.mark.parametrize("main, extra", [(predict.main, ["a fine film"]), (generate.main, ["--instruction", "Hi."])])
def test_an_empty_run_folder_is_refused_not_read_as_the_current_folder(main, extra, tiny_gpt2, capsys, monkeypatch):
    monkeypatch.chdir(tiny_gpt2)  # a model folder: read as the run, it would be used
    line = refusal(main, ["", *extra], capsys)
    assert line == "error: the run folder is empty; pass the --output_dir of a finished run."


@pytest.mark.parametrize("file, words", [("folder", "is a folder; pass a text file with one text per line."),
                                         ("/dev/null", "error: there is no non-empty text to classify.")])  # fmt: skip
def test_a_file_of_texts_that_is_a_folder_or_empty_is_named_as_such(file, words, tiny_gpt2, tmp_path, capsys):
    run = label_token_run(tiny_gpt2, tmp_path / "run")
    (tmp_path / "folder").mkdir()
    line = refusal(predict.main, [run, "--file", tmp_path / file if file == "folder" else file], capsys)
    assert words in line and "does not exist" not in line, line


def test_every_tool_takes_texts_after_a_switch_and_names_a_bad_text_by_its_argument(tmp_path, capsys):
    from hf_finetune import chat_answer

    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")
    line = refusal(chat_answer.main, [tmp_path, "--json", undecodable], capsys)
    assert line.startswith("error: argument 3 is not UTF-8 text") and "--json" not in line
    line = refusal(chat_answer.main, [tmp_path / "no-run", "--json", "how are you?"], capsys)
    assert "unrecognized arguments" not in line and "no-run" in line  # parsed: the run folder is what is wrong
