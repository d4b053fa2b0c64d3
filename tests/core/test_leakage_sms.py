"""The leakage figures of the real SMS Spam Collection, pinned, and what --dedupe leaves of it.

The file has 5574 lines, 5171 distinct; read as the tutorial (pandas) and our loader read it,
quotes honoured, two quoted messages span lines: 5572 rows, 5169 distinct, 403 rows that repeat
another word for word, 94 of them among the 747 spam. The check compares texts after normalising
case, whitespace and punctuation, so it finds more (444). The tutorial's own split (pandas, random_state
123) puts 37 of its 300 test texts (33 spam) word for word in train; the spam recipe's seeded split
(seed 123) puts 36 there (30 spam), and 40 (33 spam) once normalised."""

from __future__ import annotations

from collections import Counter

import pytest

from hf_finetune.core.data.leakage import check_leakage
from hf_finetune.core.data.sources import REGISTRY, load_source
from hf_finetune.methods.classify.data import prepare_classification


@pytest.fixture(scope="module")
def sms_source(sms_zip):
    source = load_source(str(sms_zip))
    source.label_names = list(REGISTRY["sms_spam"].label_names)
    return source


def spam_recipe_data(source, dedupe=False):
    return prepare_classification(source, balance=True, split="0.7,0.1,0.2", seed=123, dedupe=dedupe)


def test_the_collection_repeats_403_messages_word_for_word_and_444_once_normalised(sms_source):
    rows = sms_source.splits["train"]
    texts, labels = rows["text"], rows["label"]
    assert (len(texts), len(set(texts))) == (5572, 5169)
    spam = [text for text, label in zip(texts, labels) if label == "spam"]
    assert (len(spam), len(spam) - len(set(spam))) == (747, 94)
    summary = check_leakage({"all": texts}, {"all": labels}).to_dict()
    assert summary["within"]["all"]["exact"] == 444  # 403 word for word
    assert summary["within"]["all"]["near"] == 155


def test_the_spam_recipe_split_puts_40_test_texts_in_train_33_of_them_spam(sms_source):
    data = spam_recipe_data(sms_source)
    train = set(data.splits["train"]["text"])
    verbatim = Counter(label for text, label in zip(data.splits["test"]["text"], data.splits["test"]["label"]) if text in train)
    assert verbatim == {1: 30, 0: 6}  # word for word: 36 (30 spam)

    report = check_leakage(data.split_texts(), data.split_labels())
    across = {(item["split"], item["in"]): item for item in report.to_dict()["across"]}
    test = across["test", "train"]
    assert (test["texts"], test["exact"], test["exact_by_class"], test["near"]) == (300, 40, {"spam": 33, "ham": 7}, 28)
    validation = across["validation", "train"]
    assert (validation["texts"], validation["exact"], validation["exact_by_class"], validation["near"]) == (
        149, 20, {"spam": 18, "ham": 2}, 19)  # fmt: skip
    assert (across["test", "validation"]["exact"], across["test", "validation"]["near"]) == (6, 6)
    assert report.plan_line().startswith(
        "20 of 149 validation texts also in train (18 spam, 2 ham) + 19 near; "
        "40 of 300 test texts also in train (33 spam, 7 ham) + 28 near; "
    )


def test_dedupe_leaves_no_duplicate_within_or_across_the_spam_splits(sms_source):
    data = spam_recipe_data(sms_source, dedupe=True)
    assert data.notes[0] == "--dedupe dropped 590 duplicate texts (444 exact, 146 near): 5572 -> 4982"
    assert data.notes[1] == "balanced ham 4471, spam 511 -> 511 per class"  # 236 of the 747 spam were copies
    assert data.sizes() == {"train": 715, "validation": 102, "test": 205}
    summary = check_leakage(data.split_texts(), data.split_labels()).to_dict()
    assert all(item["exact"] == item["near"] == 0 for item in summary["across"])
    assert all(counts["exact"] == counts["near"] == 0 for counts in summary["within"].values())
