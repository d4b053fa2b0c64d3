"""Tokenization runs once: the result is cached by content and parameters, and read back."""

from __future__ import annotations

import datasets
import pytest

from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.methods.classify.head.encoding import encode_for_head


def splits(texts: list[str]) -> datasets.DatasetDict:
    data = datasets.Dataset.from_dict({"text": texts, "label": [index % 2 for index in range(len(texts))]})
    return datasets.DatasetDict({"train": data, "test": data.select(range(1))})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINETUNE_CACHE", str(tmp_path))
    return tmp_path / "tokenized"


def test_a_second_encoding_of_the_same_data_reads_the_cache(cache, gpt2_tokenizer_dir, monkeypatch):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    data = splits(["WINNER! claim your prize", "see you at six", "ok lar"])
    first, truncated = encode_for_head(data, tokenizer, max_length=4)
    files = sorted(cache.glob("*.arrow"))
    assert len(files) == 2 and truncated == 2  # the first text, in both splits
    assert first["train"].cache_files[0]["filename"] in map(str, files)

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the cached result should have been read, not recomputed")

    monkeypatch.setattr(type(tokenizer), "__call__", no_tokenizing)
    second, truncated_again = encode_for_head(data, tokenizer, max_length=4)
    assert second["train"].to_list() == first["train"].to_list() and truncated_again == 2
    assert sorted(cache.glob("*.arrow")) == files


def test_other_data_or_parameters_get_their_own_cache_files(cache, gpt2_tokenizer_dir):
    tokenizer = load_tokenizer(str(gpt2_tokenizer_dir))
    data = splits(["WINNER! claim your prize", "see you at six"])
    short, _ = encode_for_head(data, tokenizer, max_length=4)
    long, _ = encode_for_head(data, tokenizer, max_length=64)
    other, _ = encode_for_head(splits(["another text", "and one more"]), tokenizer, max_length=4)
    assert len(set(cache.glob("*.arrow"))) == 6
    assert short["train"]["input_ids"] != long["train"]["input_ids"] != other["train"]["input_ids"]
