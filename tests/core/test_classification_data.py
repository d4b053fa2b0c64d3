"""Layer 2: balancing, seeded splits, label maps and the errors of bad data."""

from __future__ import annotations

from collections import Counter

import datasets
import pytest

from hf_finetune.core.data.sources import REGISTRY, SourceData, load_source
from hf_finetune.core.errors import UserError
from hf_finetune.methods.classify.data import prepare_classification


@pytest.fixture(scope="module")
def sms_source(sms_zip) -> SourceData:
    source = load_source(str(sms_zip))
    source.label_names = list(REGISTRY["sms_spam"].label_names)
    return source


def spam_data(source, seed=123):
    return prepare_classification(source, balance=True, split="0.7,0.1,0.2", seed=seed)


def test_balance_and_split_sizes_on_the_real_data(sms_source):
    data = spam_data(sms_source)
    assert data.sizes() == {"train": 1045, "validation": 149, "test": 300}
    everything = [label for split in data.splits.values() for label in split["label"]]
    assert Counter(everything) == {0: 747, 1: 747}
    assert data.label_names == ["ham", "spam"]
    assert data.id2label == {0: "ham", 1: "spam"}
    assert data.splits["train"].features["label"].names == ["ham", "spam"]


def test_splits_are_disjoint_and_deterministic(sms_source):
    first, again, other = spam_data(sms_source), spam_data(sms_source), spam_data(sms_source, seed=7)
    for name in ("train", "validation", "test"):
        assert first.splits[name]["text"] == again.splits[name]["text"]
    assert first.splits["test"]["text"] != other.splits["test"]["text"]
    # Every spam message lands in exactly one split (compared as multisets: the collection has duplicates).
    spam_in_splits = Counter(
        text for split in first.splits.values() for text, label in zip(split["text"], split["label"]) if label == 1
    )
    source_rows = sms_source.splits["train"]
    assert spam_in_splits == Counter(t for t, l in zip(source_rows["text"], source_rows["label"]) if l == "spam")


def test_labels_from_strings_are_sorted_names(sms_zip):
    data = prepare_classification(load_source(str(sms_zip)), balance=False, seed=1)
    assert data.label_names == ["ham", "spam"]
    assert sum(data.sizes().values()) == 5572


def test_class_names_flag_sets_the_order(sms_source):
    data = prepare_classification(sms_source, class_names="spam,ham", balance=True, seed=123)
    assert data.label_names == ["spam", "ham"]
    first = data.splits["train"][0]
    assert first["label"] in (0, 1)


def test_presplit_data_is_kept_and_integer_labels_named(rt_folder):
    data = prepare_classification(load_source(str(rt_folder)), class_names="neg,pos")
    assert data.sizes() == {"train": 8530, "validation": 1066, "test": 1066}
    assert data.splits["train"][0]["label"] == 1


def source_from(rows: dict, name="bad.tsv", label_names=None) -> SourceData:
    return SourceData(
        splits=datasets.DatasetDict(train=datasets.Dataset.from_dict(rows)),
        origin=name,
        label_names=label_names,
        files={"train": name},
    )


@pytest.mark.parametrize(
    "rows, kwargs, message",
    [
        ({"msg": ["a", "b"], "label": ["ham", "spam"]}, {}, r"bad.tsv has no column 'text' \(columns: msg, label\)"),
        ({"text": ["a", "b"], "lab": ["ham", "spam"]}, {}, "has no column 'label'.*--label_column"),
        (
            {"text": ["a", "b", "c"], "label": ["ham", "spam", "eggs"]},
            {"class_names": "ham,spam"},
            r"bad.tsv, row 3, column 'label': label 'eggs' is not one of ham, spam",
        ),
        ({"text": ["a", "  ", "c"], "label": ["ham", "spam", "ham"]}, {}, "row 2, column 'text': the text is empty"),
        ({"text": ["a", "b"], "label": [0.0, float("nan")]}, {"class_names": "x,y"}, "row 2.*the label is missing"),
        (
            {"text": ["a", "b", "c"], "label": ["ham", "ham", "ham"]},
            {"class_names": "ham,spam", "balance": True},
            r"^--dataset: bad.tsv has no example of the class spam named by --class_names",
        ),
        ({"text": ["a"] * 20, "label": ["ham"] * 20}, {}, "holds only the label 'ham'; a classifier needs"),
        ({"text": ["a", "b", "c"], "label": [1, 2.5, 1]}, {}, r"row 2, column 'label': label 2.5 is not a class"),
        (
            {"text": list("abcd"), "label": ["ham", "1", "spam", "ham"]},
            {},
            r"mixes numbers and words as labels \('1' at bad.tsv, row 2, 'ham' at bad.tsv, row 1\)",
        ),
        (
            {"text": [f"t{i}" for i in range(40)], "label": [f"id{i}" for i in range(40)]},
            {},
            "has 40 distinct values in 40 rows, too many for classes",
        ),
        ({"text": ["a", "b"], "label": ["ham", "spam"]}, {"class_names": "ham,spam"}, "split is empty"),
        ({"text": ["a", "b"], "label": ["ham", "spam"]}, {"split": "0.5,0.5"}, "--split: '0.5,0.5' must be three"),
        ({"text": ["a", "b"], "label": ["ham", "spam"]}, {"class_names": "ham"}, "--class_names: 'ham' must name two"),
    ],
)
def test_bad_data_names_file_row_and_column(rows, kwargs, message):
    with pytest.raises(UserError, match=message):
        prepare_classification(source_from(rows), **kwargs)


def test_train_split_with_one_class_is_refused():
    rows = {"text": ["a"] * 4, "label": ["ham"] * 4}
    other = {"text": ["a", "b"], "label": ["ham", "spam"]}
    source = SourceData(
        splits=datasets.DatasetDict(
            train=datasets.Dataset.from_dict(rows),
            validation=datasets.Dataset.from_dict(other),
            test=datasets.Dataset.from_dict(other),
        ),
        origin="folder data",
    )
    with pytest.raises(UserError, match=r"the train split has no example of 'spam' \(only of 'ham'\)"):
        prepare_classification(source, class_names="ham,spam")


@pytest.mark.parametrize("values", [[1, 2], ["1", "2"], [1.0, 2.0], ["1.0", "2.0"]])
def test_numeric_labels_are_the_classes_the_data_has(values):
    rows = {"text": [f"t{i}" for i in range(20)], "label": [values[i % 2] for i in range(20)]}
    data = prepare_classification(source_from(rows), seed=3)
    assert data.label_names == ["1", "2"]  # not a class "0" that nobody has
    train = data.splits["train"]
    assert {train.features["label"].int2str(label) for label in train["label"]} == {"1", "2"}
    # every row keeps its own class: text t1 has label 2
    named = {text: train.features["label"].int2str(label) for split in data.splits.values()
             for text, label in zip(split["text"], split["label"])}  # fmt: skip
    assert named["t1"] == "2" and named["t0"] == "1"


def test_numeric_labels_sort_as_numbers_and_may_be_negative():
    rows = {"text": [f"t{i}" for i in range(60)], "label": [[-1, 10, 2][i % 3] for i in range(60)]}
    # (every split needs every class: 18 validation and test rows of three classes have them)
    assert prepare_classification(source_from(rows), split="0.4,0.3,0.3").label_names == ["-1", "2", "10"]


def test_csv_messages_count_file_lines_with_the_header_as_line_1(tmp_path):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text('text,label\n"two\nlines",ham\nb,spam\n,ham\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"data.csv, line 5, column 'text': the text is empty"):
        prepare_classification(load_source(str(csv_file)))


def test_jsonl_messages_count_file_lines(tmp_path):
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": null}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"data.jsonl, line 3, column 'label': the label is missing"):
        prepare_classification(load_source(str(jsonl)), class_names="x,y")


def test_an_empty_split_file_is_named_not_blamed_on_the_fractions():
    rows = {"text": ["a", "b", "c", "d"], "label": ["ham", "spam"] * 2}
    empty = datasets.Dataset.from_dict({"text": [], "label": []})
    source = SourceData(
        splits=datasets.DatasetDict(train=datasets.Dataset.from_dict(rows), test=empty),
        origin="folder data",
        files={"train": "data/train.parquet", "test": "data/test.parquet"},
    )
    with pytest.raises(UserError, match=r"^--dataset: data/test.parquet holds no rows; give the test split some"):
        prepare_classification(source)
