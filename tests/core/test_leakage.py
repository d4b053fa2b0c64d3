"""core.leakage on crafted texts: normalised exact duplicates, near duplicates by character 5-gram
Jaccard similarity (checked against a comparison of every pair), the counts within and across
splits, the plan line and report section, and what --dedupe keeps."""

from __future__ import annotations

import json
import random
import string

import numpy as np
import pytest

from hf_finetune.core.data.leakage import (
    NEAR_SIMILARITY,
    check_leakage,
    first_copies,
    leakage_markdown,
    near_duplicates,
    normalise,
)
from hf_finetune.core.errors import UserError


def jaccard(first: str, second: str, n: int = 5) -> float:
    grams = [{text[i : i + n] for i in range(len(text) - n + 1)} for text in (first, second)]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def test_exact_duplicates_are_the_same_after_normalising_case_whitespace_and_punctuation():
    assert normalise("Ok lar... Joking wif u oni...") == normalise("ok LAR joking   wif u oni") == "ok lar joking wif u oni"
    assert normalise("Sorry, I'll call later") == normalise("sorry i ll call later")
    assert normalise("call 0800 now") != normalise("call 0801 now")


def test_the_similarity_is_the_jaccard_similarity_of_character_5_grams_computed_by_hand():
    # 6 five-grams each, 5 shared, 7 in all: 5/7 = 0.714 (near); one more letter changed: 4/8 = 0.5 (not).
    similar = near_duplicates(["abcdefghij", "abcdefghix", "abcdefghyx"])
    assert similar[0, 1] == pytest.approx(5 / 7)
    assert similar[0, 2] == similar[1, 2] == 0 and similar[1, 0] == similar[0, 1]
    # A text inside another: 7 of 10 five-grams, exactly the threshold. Only the longer text's rarest
    # four five-grams include one they share: a prefix cut one short (0.7 * 10 = 7.000000000000001) misses it.
    assert near_duplicates(["abcdefghijk", "abcdefghijklmn"])[0, 1] == pytest.approx(0.7)


NEAR_PAIRS = [  # the same message sent again with another number, a typo fixed, a word added
    ("please call 08712402902 immediately as there is an urgent message waiting for you",
     "please call 08712402972 immediately as there is an urgent message waiting for you"),
    ("sms services for your inclusive text credits pls goto www comuk net login",
     "sms services for your inclusive text credits pls gotto www comuk net login"),
    ("sorry no have got few things to do may be in pub later", "have got few things to do may be in pub later"),
]
DISTINCT_PAIRS = [  # a shared template, different content
    ("how do you say dog in spanish\nperro", "how do you say day in spanish\ndía"),
    ("i am on the way to ur home", "i am on the way to tirupur"),
    ("what is the chemical symbol for aluminum\nal", "what is the chemical symbol for zinc\nzn"),
]  # fmt: skip


@pytest.mark.parametrize("pair", NEAR_PAIRS + DISTINCT_PAIRS)
def test_near_duplicates_on_crafted_pairs(pair):
    similar = near_duplicates(list(pair))
    expected = jaccard(*pair)
    assert (expected >= NEAR_SIMILARITY) == (pair in NEAR_PAIRS)
    assert similar[0, 1] == (pytest.approx(expected) if pair in NEAR_PAIRS else 0)


def test_only_rare_n_grams_pick_the_pairs_yet_every_near_pair_is_found():
    """The prefix filter against a comparison of every pair, on texts edited into near copies at
    similarities around the threshold (sizes where 0.7 * size is a float like 7.000000000000001)."""
    rng = random.Random(5)
    texts = []
    for _ in range(100):
        base = "".join(rng.choice(string.ascii_lowercase[:6] + " ") for _ in range(rng.randint(12, 60)))
        texts.append(base)
        for _ in range(3):
            edited = list(base)
            for _ in range(rng.randint(1, 3)):
                edited[rng.randrange(len(edited))] = rng.choice(string.ascii_lowercase)
            texts.append("".join(edited))
    texts = list(dict.fromkeys(normalise(text) for text in texts))  # as check_leakage hands them over
    similar = near_duplicates(texts).toarray()
    grams = [{text[i : i + 5] for i in range(len(text) - 4)} for text in texts]
    expected = np.array([[len(a & b) / len(a | b) if a is not b else 0.0 for b in grams] for a in grams])
    expected[expected < NEAR_SIMILARITY - 1e-9] = 0
    # Many pairs, a good part of them just above the threshold, and some just below it.
    assert np.count_nonzero(expected) > 150 and np.count_nonzero((expected > 0) & (expected < 0.75)) > 20
    np.testing.assert_allclose(similar, expected)


def test_texts_shorter_than_an_n_gram_are_compared_only_exactly():
    assert near_duplicates(["ok", "ok!", "k"]).nnz == 0
    report = check_leakage({"train": ["ok", "hi"], "test": ["OK!", "yo"]}).to_dict()
    assert report["across"][0]["exact"] == 1 and report["across"][0]["near"] == 0


SPLITS = {
    "train": ["Win a FREE prize, call 09061 now!", "see you at six", "see you at six", "the cat sat on the mat today",
              "meeting moved to monday morning at ten"],
    "validation": ["see you at SIX.", "a new message entirely"],
    "test": ["win a free prize call 09061 now", "The cat sat on the mat today!!", "meeting moved to monday morning at 10",
             "totally unrelated words here", "a new message entirely"],
}  # fmt: skip
LABELS = {
    "train": ["spam", "ham", "ham", "ham", "ham"],
    "validation": ["ham", "ham"],
    "test": ["spam", "ham", "ham", "ham", "ham"],
}


def test_counts_within_and_across_splits_with_classes():
    report = check_leakage(SPLITS, LABELS)
    summary = json.loads(json.dumps(report.to_dict()))  # JSON-able as it is
    assert summary["sizes"] == {"train": 5, "validation": 2, "test": 5}
    assert summary["within"]["train"]["exact"] == 1 and summary["within"]["train"]["near"] == 0
    assert summary["within"]["train"]["exact_examples"] == [{"text": "see you at six", "copies": 2}]
    across = {(item["split"], item["in"]): item for item in summary["across"]}
    assert list(across) == [("validation", "train"), ("test", "train"), ("test", "validation")]
    assert across["validation", "train"]["exact"] == 1 and across["validation", "train"]["exact_by_class"] == {"ham": 1}
    test_in_train = across["test", "train"]
    assert (test_in_train["texts"], test_in_train["exact"], test_in_train["near"]) == (5, 2, 1)
    assert test_in_train["exact_by_class"] == {"spam": 1, "ham": 1}
    assert test_in_train["near_by_class"] == {"ham": 1}
    assert [example["text"] for example in test_in_train["exact_examples"]] == [
        "win a free prize call 09061 now", "The cat sat on the mat today!!"]  # fmt: skip
    near = test_in_train["near_examples"][0]
    assert near["text"] == "meeting moved to monday morning at 10"
    assert near["match"] == "meeting moved to monday morning at ten"
    assert near["similarity"] == pytest.approx(jaccard(normalise(near["text"]), normalise(near["match"])), abs=1e-3)
    assert across["test", "validation"]["exact"] == 1

    line = report.plan_line()
    assert "\n" not in line
    assert "2 of 5 test texts also in train (1 spam, 1 ham) + 1 near" in line
    assert "1 of 2 validation texts also in train (1 ham) + 0 near" in line
    assert "repeats within train 1 + 0 near" in line


def test_the_report_section_has_the_tables_and_examples():
    section = leakage_markdown(check_leakage(SPLITS, LABELS).to_dict())
    assert section.startswith("## Leakage")
    assert "| test | 5 | train | 2 (1 spam, 1 ham) | 1 (1 ham) |" in section
    assert "| train | 5 | 1 | 0 |" in section
    assert '- test text also in train: "win a free prize call 09061 now"' in section
    assert "--dedupe" in section


def test_data_without_duplicates_says_so_in_one_line():
    report = check_leakage({"train": ["alpha beta gamma", "delta epsilon"], "test": ["zeta eta theta"]})
    assert report.plan_line() == "no text repeats within or across train, test (exact or near)"
    assert report.to_dict()["across"][0]["exact"] == 0 and "exact_by_class" not in report.to_dict()["across"][0]


def test_dedupe_keeps_each_text_once_where_it_comes_first():
    ordered = {"test": SPLITS["test"], "validation": SPLITS["validation"], "train": SPLITS["train"] + ["only in train"]}
    kept, note = first_copies(ordered)
    # Test first: validation loses the message also in test; train loses the prize and the cat (in
    # test), both "six" (in validation) and the meeting (a near copy of test's).
    assert kept == {"test": [0, 1, 2, 3, 4], "validation": [0], "train": [5]}
    assert note == "--dedupe dropped 6 duplicate texts (5 exact, 1 near): validation 2 -> 1, train 6 -> 1"
    remaining = {name: [ordered[name][index] for index in kept[name]] for name in ordered}
    summary = check_leakage(remaining).to_dict()
    assert all(item["exact"] == item["near"] == 0 for item in summary["across"])
    assert all(counts["exact"] == counts["near"] == 0 for counts in summary["within"].values())


def test_dedupe_of_one_split_names_no_split_and_says_when_nothing_was_dropped():
    assert first_copies({"train": ["a b c", "A, b c!", "d e f"]}) == (
        {"train": [0, 2]}, "--dedupe dropped 1 duplicate texts (1 exact, 0 near): 3 -> 2")  # fmt: skip
    assert first_copies({"train": ["a b c", "d e f"]}, what="entries")[1] == "--dedupe dropped no duplicate entries"


def test_dedupe_that_would_empty_a_split_says_which_and_why():
    with pytest.raises(UserError) as caught:
        first_copies({"test": ["one text", "two texts"], "validation": ["One text!", "two  TEXTS"], "train": ["x y z"]})
    assert str(caught.value) == (
        "--dedupe: all 2 texts of the validation split repeat texts of the test split, so none is left; "
        "drop --dedupe or give the validation split texts of its own."
    )
