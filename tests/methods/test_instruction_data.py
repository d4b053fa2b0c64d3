"""Prompt format, splits, token labels and the collator of instruction tuning."""

from __future__ import annotations

import json

import datasets
import pytest

from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.data.sources import SourceData, load_source
from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.methods.instruction.encoding import IGNORE_INDEX, encode_example, encode_instructions
from hf_finetune.methods.text.instructions import Columns, prepare_instructions
from hf_finetune.methods.text.prompt import format_example, format_prompt, prompt_ids

WITH_INPUT = {
    "instruction": "Evaluate the following phrase by transforming it into the spelling given.",
    "input": "freind --> friend",
    "output": 'The spelling of the given phrase "freind" is incorrect, the correct spelling is "friend".',
}
WITHOUT_INPUT = {
    "instruction": "Convert the active sentence to passive: 'The chef cooks the meal every day.'",
    "input": "",
    "output": "The meal is cooked by the chef every day.",
}


def test_prompt_with_input_has_an_input_section():
    assert format_example(WITH_INPUT) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nEvaluate the following phrase by transforming it into the spelling given."
        "\n\n### Input:\nfreind --> friend"
        '\n\n### Response:\nThe spelling of the given phrase "freind" is incorrect, the correct spelling is "friend".'
    )


def test_prompt_without_input_omits_the_input_section():
    assert format_prompt(WITHOUT_INPUT["instruction"], WITHOUT_INPUT["input"]) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nConvert the active sentence to passive: 'The chef cooks the meal every day.'"
        "\n\n### Response:\n"
    )
    assert "### Input:" not in format_example(WITHOUT_INPUT)


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
    return load_tokenizer(str(gpt2_tokenizer_dir))


@pytest.mark.parametrize("entry", [WITH_INPUT, WITHOUT_INPUT])
@pytest.mark.parametrize("mask_prompt", [False, True])
def test_labels_cover_exactly_the_targets_and_the_first_end_of_text(tokenizer, entry, mask_prompt):
    input_ids, labels, status = encode_example(tokenizer, entry, max_length=1024, mask_prompt=mask_prompt)
    request, header = prompt_ids(tokenizer, entry["instruction"], entry["input"])
    prompt_length = len(request) + len(header)
    eos = tokenizer.eos_token_id
    assert status == "kept"
    assert tokenizer.decode(input_ids[:prompt_length]) == format_prompt(entry["instruction"], entry["input"])
    assert tokenizer.decode(input_ids[prompt_length:-1]) == entry["output"]
    assert input_ids[-1] == eos and labels[-1] == eos
    expected_prompt_labels = [IGNORE_INDEX] * prompt_length if mask_prompt else input_ids[:prompt_length]
    assert labels[:prompt_length] == expected_prompt_labels
    assert labels[prompt_length:] == input_ids[prompt_length:]

    # In a batch with a longer example, the padding (the same token as end-of-text) is masked
    # by position: exactly one end-of-text per row is a target.
    long_ids, long_labels, _ = encode_example(tokenizer, {**entry, "output": entry["output"] * 3}, 1024, mask_prompt)
    batch = padding_collator(tokenizer)(
        [{"input_ids": input_ids, "labels": labels}, {"input_ids": long_ids, "labels": long_labels}]
    )
    row_labels, row_ids = batch["labels"][0], batch["input_ids"][0]
    assert tokenizer.pad_token_id == eos
    assert batch["attention_mask"][0].tolist() == [1] * len(input_ids) + [0] * (len(long_ids) - len(input_ids))
    assert (row_ids[len(input_ids):] == eos).all()
    assert (row_labels[len(input_ids):] == IGNORE_INDEX).all()
    assert int((row_labels == eos).sum()) == 1
    target_positions = (row_labels != IGNORE_INDEX).nonzero().flatten().tolist()
    first_target = prompt_length if mask_prompt else 0
    assert target_positions == list(range(first_target, len(input_ids)))


def test_too_long_examples_lose_prompt_tokens_first_and_never_response_tokens(tokenizer):
    request, header = prompt_ids(tokenizer, WITH_INPUT["instruction"], WITH_INPUT["input"])
    response_length = len(tokenizer(WITH_INPUT["output"])["input_ids"]) + 1
    limit = len(header) + response_length + 5
    input_ids, labels, status = encode_example(tokenizer, WITH_INPUT, max_length=limit, mask_prompt=True)
    assert status == "truncated" and len(input_ids) == limit
    assert input_ids[:5] == request[:5]
    assert tokenizer.decode(input_ids[-response_length:-1]) == WITH_INPUT["output"]
    assert encode_example(tokenizer, WITH_INPUT, max_length=len(header) + response_length, mask_prompt=True) is None

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list([WITH_INPUT, WITHOUT_INPUT])})
    _, counts = encode_instructions(splits, tokenizer, max_length=limit, mask_prompt=False)
    assert counts["train"]["truncated"] + counts["train"]["dropped"] >= 1
    with pytest.raises(UserError, match="--max_length"):
        encode_instructions(splits, tokenizer, max_length=3, mask_prompt=False)


def test_the_book_split_is_in_file_order(instruction_json):
    entries = json.loads(instruction_json.read_text())
    data = prepare_instructions(load_source(str(instruction_json)), "0.85,0.05,0.10")
    assert data.sizes() == {"train": 935, "validation": 55, "test": 110}
    assert data.splits["train"][0] == entries[0]
    assert data.splits["test"][0] == entries[935]
    assert data.splits["validation"][0] == entries[1045]
    assert data.splits["validation"][54] == entries[1099]


def test_entries_without_output_are_rejected_with_their_row():
    source = SourceData(
        splits=datasets.DatasetDict(train=datasets.Dataset.from_list([WITH_INPUT, {**WITHOUT_INPUT, "output": " "}])),
        origin="data.json",
        files={"train": "data.json"},
    )
    with pytest.raises(UserError, match="data.json, entry 2: 'output' is empty"):
        prepare_instructions(source)
    missing = SourceData(splits=datasets.DatasetDict(train=datasets.Dataset.from_list([{"prompt": "x"}])), origin="x")
    with pytest.raises(UserError, match="--instruction_column: x has no 'instruction' column \\(it has prompt\\)"):
        prepare_instructions(missing)


def test_other_column_names_through_flags_and_prompt_completion_data():
    entries = [{"q": f"Say {n}.", "ctx": "", "a": str(n)} for n in range(20)]
    source = SourceData(splits=datasets.DatasetDict(train=datasets.Dataset.from_list(entries)), origin="d.json",
                        files={"train": "d.json"})  # fmt: skip
    data = prepare_instructions(source, columns=Columns("q", "ctx", "a"))
    assert data.splits["train"][0] == {"instruction": "Say 0.", "input": "", "output": "0"}
    with pytest.raises(UserError, match="--output_column: d.json has no 'answer' column \\(it has q, ctx, a\\)"):
        prepare_instructions(source, columns=Columns("q", "ctx", "answer"))
    with pytest.raises(UserError, match="--input_column: d.json has no 'context' column"):
        prepare_instructions(source, columns=Columns("q", "context", "a"))
    pairs = [{"prompt": f"Say {n}.", "completion": str(n)} for n in range(20)]
    source = SourceData(splits=datasets.DatasetDict(train=datasets.Dataset.from_list(pairs)), origin="p.jsonl")
    data = prepare_instructions(source)
    assert data.splits["train"][3] == {"instruction": "Say 3.", "input": "", "output": "3"}
    assert any("prompt read as the instruction" in note for note in data.notes)
