"""Bad input, table-driven: each malformed input built from the real data gives one clear
sentence, exit status 2, before the model loads, and leaves no results in the output folder."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from hf_finetune.core.errors import run_cli
from hf_finetune.methods.classify.head.train import main
from hf_finetune.recipes.spam import DEFAULTS


def sms_frame(sms_zip) -> pd.DataFrame:
    raw = zipfile.ZipFile(sms_zip).read("SMSSpamCollection").decode("utf-8")
    return pd.read_csv(io.StringIO(raw), sep="\t", header=None, names=["label", "text"], dtype=str)


def write_tsv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep="\t", header=False, index=False)
    return path


def case_missing_file(d, z):
    return ["--dataset", str(d / "gone.zip")], "gone.zip does not exist"


def case_truncated_zip(d, z):
    (d / "cut.zip").write_bytes(z.read_bytes()[:60_000])
    return ["--dataset", str(d / "cut.zip")], "is not a readable zip archive"


def case_zip_with_two_data_files(d, z):
    with zipfile.ZipFile(d / "two.zip", "w") as archive:
        data = zipfile.ZipFile(z).read("SMSSpamCollection")
        archive.writestr("a.tsv", data)
        archive.writestr("b.tsv", data)
    return ["--dataset", str(d / "two.zip")], "should hold one data file"


def case_empty_file(d, z):
    (d / "empty.tsv").write_bytes(b"")
    return ["--dataset", str(d / "empty.tsv")], "empty.tsv is empty"


def case_latin1_read_as_utf8(d, z):
    text = zipfile.ZipFile(z).read("SMSSpamCollection").decode("utf-8")
    (d / "latin1.tsv").write_bytes(text.encode("latin-1", errors="replace"))
    return ["--dataset", str(d / "latin1.tsv")], "latin1.tsv is not UTF-8 (byte"


def case_text_column_renamed(d, z):
    sms_frame(z).rename(columns={"text": "message"}).to_csv(d / "renamed.csv", index=False)
    return ["--dataset", str(d / "renamed.csv")], "renamed.csv has no column 'text' (columns: label, message)"


def case_label_column_renamed(d, z):
    sms_frame(z).rename(columns={"label": "class"}).to_csv(d / "renamed.csv", index=False)
    return ["--dataset", str(d / "renamed.csv")], "has no column 'label'"


def case_wrong_text_column_flag(d, z):
    return ["--dataset", str(z), "--text_column", "sms"], "has no column 'sms'"


def case_unknown_label_value(d, z):
    frame = sms_frame(z)
    frame.loc[41, "label"] = "eggs"
    return ["--dataset", str(write_tsv(frame, d / "eggs.tsv")), "--class_names", "ham,spam"], (
        "eggs.tsv, line 42, column 'label': label 'eggs' is not one of ham, spam"
    )


def case_missing_label(d, z):
    frame = sms_frame(z)
    frame.loc[9, "label"] = None
    frame.to_csv(d / "nan.csv", index=False)
    return [
        "--dataset",
        str(d / "nan.csv"),
        "--class_names",
        "ham,spam",
    ], "nan.csv, line 11, column 'label': the label is missing"


def case_empty_text(d, z):
    frame = sms_frame(z)
    frame.loc[99, "text"] = ""
    frame.to_csv(d / "empty_text.csv", index=False)
    return ["--dataset", str(d / "empty_text.csv")], "empty_text.csv, line 101, column 'text': the text is empty"


def case_whitespace_text(d, z):
    frame = sms_frame(z)
    frame.loc[4, "text"] = "   "
    return ["--dataset", str(write_tsv(frame, d / "blank.tsv"))], "blank.tsv, line 5, column 'text': the text is empty"


def case_one_class_only(d, z):
    frame = sms_frame(z)
    return ["--dataset", str(write_tsv(frame[frame.label == "ham"], d / "ham.tsv")), "--class_names", "ham,spam"], (
        "ham.tsv has no example of the class spam named by --class_names"
    )


def case_split_with_one_class(d, z):
    folder = d / "splits"
    folder.mkdir()
    frame = sms_frame(z)
    frame[frame.label == "ham"].head(200).to_json(folder / "train.jsonl", orient="records", lines=True)
    frame.head(50).to_json(folder / "validation.jsonl", orient="records", lines=True)
    frame.tail(50).to_json(folder / "test.jsonl", orient="records", lines=True)
    return ["--dataset", str(folder), "--balance", "false", "--class_names", "ham,spam"], (
        "the train split has no example of 'spam' (only of 'ham')"
    )


def case_folder_without_train(d, z):
    folder = d / "no_train"
    folder.mkdir()
    sms_frame(z).to_json(folder / "test.jsonl", orient="records", lines=True)
    return ["--dataset", str(folder)], "has no train file"


def case_truncated_jsonl(d, z):
    text = sms_frame(z).head(100).to_json(orient="records", lines=True)
    (d / "cut.jsonl").write_text(text[: len(text) // 2], encoding="utf-8")
    return ["--dataset", str(d / "cut.jsonl")], "cut.jsonl, line 47, column 23: not valid JSON"


def case_unknown_dataset(d, z):
    return ["--dataset", "no-such-user/no-such-dataset"], "could not load 'no-such-user/no-such-dataset' from the"


def case_unknown_model(d, z):
    return ["--dataset", str(z), "--model_name_or_path", "no-such-user/no-such-model"], (
        "could not load the tokenizer 'no-such-user/no-such-model'"
    )


def case_tokenizer_without_pad_or_eos(d, z, tokenizer_dir):
    folder = d / "no-eos"
    folder.mkdir()
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    for key in ("eos_token", "pad_token", "bos_token", "unk_token"):
        config.pop(key, None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # GPT2Tokenizer would bring its own defaults
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    return ["--dataset", str(z), "--model_name_or_path", str(folder)], "has neither a pad nor an end-of-text token"


def case_conflicting_precision(d, z):
    return ["--dataset", str(z), "--bf16", "--fp16"], "conflicting or invalid flags"


def case_unknown_policy(d, z):
    return ["--dataset", str(z), "--trainable", "last_layers:2"], "--trainable: 'last_layers:2' is not a policy"


def case_bad_split(d, z):
    return ["--dataset", str(z), "--split", "0.7,0.2,0.2"], "--split: '0.7,0.2,0.2' must be three fractions"


def case_duplicate_class_names(d, z):
    return ["--dataset", str(z), "--class_names", "ham,ham"], "--class_names: 'ham,ham' must name two or more distinct"


def case_config_unknown_key(d, z):
    (d / "run.yaml").write_text("learning_rte: 0.1\n", encoding="utf-8")
    return ["--dataset", str(z), "--config", str(d / "run.yaml")], "unknown key 'learning_rte'"


def case_unknown_flag(d, z):
    return ["--dataset", str(z), "--learning_rte", "0.1"], "unknown flag(s): --learning_rte"


def case_resume_from_nowhere(d, z):
    return ["--dataset", str(z), "--resume_from_checkpoint", str(d / "nothing")], (
        "--resume_from_checkpoint: " + str(d / "nothing") + " is not a checkpoint folder"
    )


CASES = [value for name, value in sorted(globals().items()) if name.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__[5:] for case in CASES])
def test_bad_input_gives_one_clear_sentence_before_the_model_loads(
    case, tmp_path, sms_zip, tiny_gpt2, gpt2_tokenizer_dir, capsys, monkeypatch
):
    def model_loaded(*args, **kwargs):
        raise AssertionError("the model loaded: the mistake was found too late")

    monkeypatch.setattr("hf_finetune.methods.classify.head.train.load_classifier", model_loaded)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    extra = (gpt2_tokenizer_dir,) if "tokenizer_dir" in case.__code__.co_varnames else ()
    flags, message = case(inputs, sms_zip, *extra)
    output = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_gpt2), "--output_dir", str(output), *flags]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in error
    error_lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], error[-1500:]
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for bad input"
