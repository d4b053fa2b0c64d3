"""Fuzz of the classification entry points with bad input: `python -m hf_finetune.classify`
(--method label-token and head), recipes/spam.py and `python -m hf_finetune.predict`, run
in-process as a user meets them. Each case must stop before anything trains with exit status 2,
one `error:` sentence holding the expected words and no traceback, write nothing into the run
folder and leave every input file as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from hf_finetune import classify, predict
from hf_finetune.core.errors import run_cli
from hf_finetune.methods.classify.head.train import main as head_main
from hf_finetune.recipes.spam import DEFAULTS as SPAM_DEFAULTS

HAM = ["see you at six", "ok, on my way", "call me later", "lunch tomorrow?", "thanks, got it", "running late"]
SPAM = ["WIN a prize now", "free entry, text WIN", "claim your cash", "urgent! call 0900", "you won a trip", "txt STOP"]


def good_rows() -> pd.DataFrame:
    """72 distinct texts, ham and spam in turn: enough that each split --split cuts has both classes."""
    texts = [f"{text} ({number})" for number, pair in enumerate(zip(HAM * 6, SPAM * 6)) for text in pair]
    return pd.DataFrame({"text": texts, "label": ["ham", "spam"] * (len(texts) // 2)})


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def good_csv(d: Path) -> Path:
    good_rows().to_csv(d / "good.csv", index=False)
    return d / "good.csv"


# Each case: (entry point, its flags or arguments, words the error line must hold).
# Entry points: "label-token" and "head" are classify.main with --method; "spam" is the recipe;
# "predict" is hf_finetune.predict.main. Training entry points get --model_name_or_path (the
# tiny GPT-2) and --output_dir unless the case sets them.

# --- files --------------------------------------------------------------------------------------


def case_missing_file(d, m):
    return "label-token", ["--dataset", str(d / "nowhere.csv")], "nowhere.csv does not exist"


def case_zero_byte_file(d, m):
    return "head", ["--dataset", str(write(d / "zero.csv", b""))], "zero.csv is empty"


def case_header_only(d, m):
    return (
        "label-token",
        ["--dataset", str(write(d / "header.csv", "text,label\n"))],
        "has a header line but no data rows",
    )


def case_binary_file(d, m):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    return "head", ["--dataset", str(write(d / "image.csv", png))], "image.csv is a binary file, not CSV text"


def case_utf16_file(d, m):
    raw = good_rows().to_csv(index=False).encode("utf-16")
    return "label-token", ["--dataset", str(write(d / "wide.csv", raw))], "wide.csv is UTF-16 text; convert it to UTF-8"


def case_latin1_file(d, m):
    text = good_rows().to_csv(index=False).replace("see you", "café")
    return "head", ["--dataset", str(write(d / "latin.csv", text.encode("latin-1")))], "latin.csv is not UTF-8 (byte"


def case_semicolon_delimiter(d, m):
    text = good_rows().to_csv(index=False, sep=";")
    return (
        "label-token",
        ["--dataset", str(write(d / "semi.csv", text))],
        "semi.csv, line 1: the columns are separated by ';', but those of a .csv file by commas; save it with commas",
    )


def case_ragged_row(d, m):
    lines = good_rows().to_csv(index=False).splitlines()
    lines[3] += ",extra"
    return (
        "head",
        ["--dataset", str(write(d / "ragged.csv", "\n".join(lines)))],
        ("ragged.csv, line 4: 3 fields where line 1 has 2"),
    )


def case_ragged_row_after_a_multiline_text(d, m):
    text = 'text,label\n"two\nlines",ham\nb,spam,oops\n'
    return (
        "label-token",
        ["--dataset", str(write(d / "multi.csv", text))],
        "multi.csv, line 4: 3 fields where line 1 has 2",
    )


def case_short_row_without_label(d, m):
    lines = good_rows().to_csv(index=False).splitlines()
    lines[5] = "a text without its label"
    return (
        "head",
        ["--dataset", str(write(d / "short.csv", "\n".join(lines)))],
        ("short.csv, line 6, column 'label': the label is missing"),
    )


def case_missing_columns(d, m):
    good_rows().rename(columns={"text": "message", "label": "category"}).to_csv(d / "named.csv", index=False)
    return (
        "label-token",
        ["--dataset", str(d / "named.csv")],
        "named.csv has no column 'text' (columns: message, category)",
    )


def case_empty_text(d, m):
    rows = good_rows()
    rows.loc[6, "text"] = "  "
    rows.to_json(d / "blank.jsonl", orient="records", lines=True)
    return "head", ["--dataset", str(d / "blank.jsonl")], "blank.jsonl, line 7, column 'text': the text is empty"


def case_single_class(d, m):
    rows = good_rows()
    rows[rows.label == "ham"].to_csv(d / "ham.csv", index=False)
    return "label-token", ["--dataset", str(d / "ham.csv")], "holds only the label 'ham'; a classifier needs"


def case_nan_label(d, m):
    rows = good_rows().astype(object)
    rows.loc[3, "label"] = None
    rows.to_json(d / "null.jsonl", orient="records", lines=True)
    return "head", ["--dataset", str(d / "null.jsonl")], "null.jsonl, line 4, column 'label': the label is missing"


def case_huge_label_set(d, m):
    rows = good_rows()
    rows["label"] = [f"user{i}" for i in range(len(rows))]
    rows.to_csv(d / "ids.csv", index=False)
    return "label-token", ["--dataset", str(d / "ids.csv")], "has 72 distinct values in 72 rows, too many for classes"


def case_label_column_is_the_text(d, m):
    flags = ["--dataset", str(good_csv(d)), "--label_column", "text", "--text_column", "label"]
    return "head", flags, "column 'text' of " + str(d / "good.csv") + " has 72 distinct values in 72 rows"


def case_fractional_labels(d, m):
    rows = good_rows()
    rows["label"] = [0.0, 1.0] * 11 + [0.5, 1.0] + [0.0, 1.0] * 24
    rows.to_json(d / "float.jsonl", orient="records", lines=True)
    return (
        "label-token",
        ["--dataset", str(d / "float.jsonl")],
        "float.jsonl, line 23, column 'label': label 0.5 is not a class",
    )


def case_mixed_label_kinds(d, m):
    rows = good_rows()
    rows.loc[4, "label"] = "1"
    rows.to_csv(d / "mixed.csv", index=False)
    return "head", ["--dataset", str(d / "mixed.csv")], "mixes numbers and words as labels ('1' at "


def case_duplicated_header(d, m):
    text = good_rows().assign(extra="x").to_csv(index=False).replace("text,label,extra", "text,label,label", 1)
    return (
        "label-token",
        ["--dataset", str(write(d / "dup.csv", text))],
        ("dup.csv, line 1 (the header): the column name 'label' appears twice (columns 2 and 3)"),
    )


def case_duplicated_header_in_a_split_folder(d, m):
    folder = d / "splits"
    folder.mkdir()
    text = good_rows().assign(extra="x").to_csv(index=False).replace("text,label,extra", "text,text,label", 1)
    write(folder / "train.csv", text)
    return "head", ["--dataset", str(folder)], "train.csv, line 1 (the header): the column name 'text' appears twice"


def case_two_empty_column_names(d, m):
    text = good_rows().assign(a="", b="").to_csv(index=False).replace("text,label,a,b", "text,label,,", 1)
    return "label-token", ["--dataset", str(write(d / "blank_names.csv", text))], "an empty column name appears twice"


def case_jsonl_line_that_is_not_an_object(d, m):
    text = good_rows().to_json(orient="records", lines=True).replace("\n", '\n["a", "b"]\n', 1)
    return (
        "head",
        ["--dataset", str(write(d / "list.jsonl", text))],
        "list.jsonl, line 2: each line must be a JSON object",
    )


def case_broken_json_array(d, m):
    text = json.dumps(good_rows().to_dict("records"), indent=1)
    text = text.replace('"ham"', "'ham'", 1)
    return (
        "label-token",
        ["--dataset", str(write(d / "broken.json", text))],
        "broken.json, line 4, column 12: not valid JSON",
    )


def case_unknown_label_in_a_validation_file(d, m):
    folder = d / "splits"
    folder.mkdir()
    good_rows().to_json(folder / "train.jsonl", orient="records", lines=True)
    rows = good_rows()
    rows.loc[2, "label"] = "eggs"
    rows.to_json(folder / "validation.jsonl", orient="records", lines=True)
    return (
        "head",
        ["--dataset", str(folder)],
        "validation.jsonl, line 3, column 'label': label 'eggs' is not one of ham, spam",
    )


def case_parquet_without_label_column(d, m):
    good_rows().rename(columns={"label": "y"}).to_parquet(d / "data.parquet")
    return (
        "label-token",
        ["--dataset", str(d / "data.parquet")],
        "data.parquet has no column 'label' (columns: text, y)",
    )


def case_damaged_save_to_disk_folder(d, m):
    (d / "saved").mkdir()
    write(d / "saved" / "dataset_info.json", "{}")
    return "head", ["--dataset", str(d / "saved")], "looks like a save_to_disk folder but cannot be loaded"


def case_tsv_that_is_comma_separated(d, m):
    text = good_rows().to_csv(index=False)
    return (
        "spam",
        ["--dataset", str(write(d / "commas.tsv", text))],
        ("commas.tsv, line 1: the columns are separated by commas, but those of a .tsv file by tabs; name it .csv"),
    )


def case_blank_test_file_in_a_split_folder(d, m):
    folder = d / "splits"
    folder.mkdir()
    good_rows().to_json(folder / "train.jsonl", orient="records", lines=True)
    good_rows().to_json(folder / "validation.jsonl", orient="records", lines=True)
    write(folder / "test.jsonl", "\n\n")
    return "label-token", ["--dataset", str(folder)], "test.jsonl is empty"


def case_class_only_in_the_validation_file(d, m):
    folder = d / "splits"
    folder.mkdir()
    rows = good_rows()
    rows[rows.label == "ham"].to_csv(folder / "train.csv", index=False)
    rows.to_csv(folder / "validation.csv", index=False)
    return (
        "head",
        ["--dataset", str(folder), "--class_names", "ham,spam"],
        ("the train split has no example of 'spam' (only of 'ham'); a classifier learns only the classes"),
    )


def case_zip_without_data(d, m):
    with zipfile.ZipFile(d / "empty.zip", "w") as archive:
        archive.writestr("readme", "nothing here")
    return "spam", ["--dataset", str(d / "empty.zip")], "empty.zip should hold one data file, found none"


def case_too_few_rows_to_split(d, m):
    text = "text,label\na,ham\nb,spam\nc,ham\n"
    return (
        "label-token",
        ["--dataset", str(write(d / "three.csv", text))],
        ("the validation split is empty: 3 rows are too few for --split 0.7,0.1,0.2"),
    )


def case_spam_recipe_on_a_file_without_spam(d, m):
    rows = good_rows()
    rows[rows.label == "ham"][["label", "text"]].to_csv(d / "ham.tsv", sep="\t", header=False, index=False)
    return (
        "spam",
        ["--dataset", str(d / "ham.tsv"), "--class_names", "ham,spam"],
        ("ham.tsv has no example of the class spam named by --class_names"),
    )


def case_class_names_with_a_class_the_data_lacks(d, m):
    return (
        "label-token",
        ["--dataset", str(good_csv(d)), "--class_names", "ham,spam,eggs"],
        ("has no example of the class eggs named by --class_names"),
    )


# --- flags ---------------------------------------------------------------------------------------


def case_unknown_method(d, m):
    return "label-token", ["--dataset", str(good_csv(d)), "--method", "knn"], "--method: 'knn' is not a method"


def case_label_words_with_the_head_method(d, m):
    return (
        "head",
        ["--dataset", str(good_csv(d)), "--label_words", "no,yes"],
        ("--label_words: label words are written by --method label-token only"),
    )


def case_too_few_label_words(d, m):
    return (
        "label-token",
        ["--dataset", str(good_csv(d)), "--label_words", "no"],
        ("--label_words 'no': 1 label words for 2 classes (ham, spam)"),
    )


def case_label_words_that_tokenize_alike(d, m):
    return "label-token", ["--dataset", str(good_csv(d)), "--label_words", " no, no"], "tokenize to the same tokens"


def case_empty_separator(d, m):
    return "label-token", ["--dataset", str(good_csv(d)), "--separator", ""], "--separator: an empty separator"


def case_max_length_without_room_for_the_text(d, m):
    return "label-token", ["--dataset", str(good_csv(d)), "--max_length", "2"], "--max_length: 2 tokens leave no room"


def case_dataset_url_for_a_file(d, m):
    return (
        "head",
        ["--dataset", str(good_csv(d)), "--dataset_url", "https://example.com/x.zip"],
        ("--dataset_url: only a registered dataset (sms_spam, rotten_tomatoes, instruction_data, preference_data) is downloaded"),
    )


def case_not_a_boolean(d, m):
    return "spam", ["--balance", "maybe"], "--balance: Truthy value expected"


def case_batch_size_zero_in_the_spam_recipe(d, m):
    return "spam", ["--per_device_train_batch_size", "0"], "--per_device_train_batch_size: 0 must be 1 or more"


def case_config_that_is_a_list(d, m):
    write(d / "list.yaml", "- learning_rate: 1\n")
    return "head", ["--dataset", str(good_csv(d)), "--config", str(d / "list.yaml")], "must be a mapping of flag names"


def case_config_that_is_not_yaml(d, m):
    write(d / "bad.yaml", "learning_rate: 1e-4\nseed: : 3\n")
    return (
        "label-token",
        ["--dataset", str(good_csv(d)), "--config", str(d / "bad.yaml")],
        ("bad.yaml, line 2 is not valid YAML (mapping values are not allowed here)"),
    )


def case_config_value_of_the_wrong_type(d, m):
    write(d / "typed.yaml", "per_device_train_batch_size: many\n")
    return (
        "spam",
        ["--config", str(d / "typed.yaml")],
        ("--per_device_train_batch_size: invalid int value: 'many'; see --help (set in --config"),
    )


def case_config_file_missing(d, m):
    return "head", ["--config", str(d / "gone.yaml")], "gone.yaml does not exist"


def case_output_dir_is_a_file(d, m):
    return (
        "label-token",
        ["--dataset", str(good_csv(d)), "--output_dir", str(good_csv(d))],
        "good.csv is a file, not a folder",
    )


# --- model folders -------------------------------------------------------------------------------


def case_model_is_a_file(d, m):
    return (
        "head",
        ["--dataset", str(good_csv(d)), "--model_name_or_path", str(good_csv(d))],
        ("--model_name_or_path: could not load the tokenizer"),
    )


def case_model_is_an_empty_folder(d, m):
    (d / "empty_model").mkdir()
    return (
        "label-token",
        ["--dataset", str(good_csv(d)), "--model_name_or_path", str(d / "empty_model")],
        ("--model_name_or_path: could not load the tokenizer"),
    )


def case_predict_with_a_missing_folder(d, m):
    return "predict", [str(d / "no_run"), "hello"], "no_run does not exist; pass the --output_dir of a finished run"


def case_predict_with_an_empty_folder(d, m):
    (d / "empty_run").mkdir()
    return "predict", [str(d / "empty_run"), "hello"], "empty_run is not a saved run"


def case_predict_with_a_plain_model(d, m):
    return (
        "predict",
        [str(m), "hello"],
        "that no run of hf-finetune trained (it has no config.yaml nor all_results.json), not a classifier (head "
        "method) or a label-token classifier",
    )


def case_predict_with_a_missing_text_file(d, m):
    return "predict", [str(m), "--file", str(d / "texts.txt")], "--file: " + str(d / "texts.txt") + " does not exist"


def case_predict_with_a_latin1_text_file(d, m):
    write(d / "texts.txt", "café au lait\n".encode("latin-1"))
    return "predict", [str(m), "--file", str(d / "texts.txt")], "texts.txt is not UTF-8"


def case_predict_with_only_blank_texts(d, m):
    write(d / "blank.txt", "\n   \n")
    return "predict", [str(m), "--file", str(d / "blank.txt")], "there is no non-empty text to classify"


CASES = [value for name, value in sorted(globals().items()) if name.startswith("case_")]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def model_copy(tiny_gpt2, tmp_path_factory) -> Path:
    """A copy of the tiny GPT-2, so that a case can never change the shared one."""
    target = tmp_path_factory.mktemp("fuzz") / "tiny-gpt2"
    shutil.copytree(tiny_gpt2, target)
    return target


def entry_point(name: str, tiny_model: Path, output: Path):
    if name == "predict":
        return predict.main, []
    common = ["--model_name_or_path", str(tiny_model), "--output_dir", str(output)]
    if name == "spam":
        return (lambda argv: head_main(argv, defaults=SPAM_DEFAULTS)), common
    return classify.main, [*common, "--method", name]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__[5:] for case in CASES])
def test_bad_input_stops_before_training_with_one_sentence(case, tmp_path, model_copy, capsys, monkeypatch):
    def trained(*args, **kwargs):
        raise AssertionError("training started: the mistake was not caught")

    monkeypatch.setattr("hf_finetune.core.run.skeleton.train_reliably", trained)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    entry, flags, message = case(inputs, model_copy)
    output = tmp_path / "run"
    main, common = entry_point(entry, model_copy, output)
    before = snapshot(inputs), snapshot(model_copy)

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [*common, *flags])
    error = capsys.readouterr().err

    assert exit_info.value.code == 2, error[-1500:]
    assert "Traceback" not in error
    lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, error[-1500:]
    assert message in lines[0]
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for bad input"
    assert (snapshot(inputs), snapshot(model_copy)) == before, "an input file changed"


@pytest.mark.parametrize("method", ["head", "label-token", "label_token"])
def test_labels_1_and_2_are_two_classes_named_as_in_the_data(method, tmp_path, model_copy, capsys, monkeypatch):
    class PlanSeen(Exception):
        pass

    def stop(*args, **kwargs):
        raise PlanSeen

    monkeypatch.setattr("hf_finetune.core.run.skeleton.train_reliably", stop)
    rows = good_rows()
    rows["label"] = rows["label"].map({"ham": 1, "spam": 2})
    rows.to_csv(tmp_path / "numbers.csv", index=False)
    argv = ["--model_name_or_path", str(model_copy), "--output_dir", str(tmp_path / "run"), "--method", method,
            "--dataset", str(tmp_path / "numbers.csv")]  # fmt: skip
    with pytest.raises(PlanSeen):
        classify.main(argv)
    plan = capsys.readouterr().out
    if method == "head":
        labels = next(line for line in plan.splitlines() if line.strip().startswith("labels"))
        assert labels.split(None, 1)[1] == "0=1, 1=2"  # two classes, not a class 0 that nobody has
    else:
        words = next(line for line in plan.splitlines() if line.strip().startswith("label words"))
        assert words.split("label words", 1)[1].strip() == "1 -> '1' [16], 2 -> '2' [17]"
