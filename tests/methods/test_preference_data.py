"""The preference method's data, encoding and refusals: the book's pairs as the instruction method's
prompt with the answers learned alone, and one sentence for each kind of bad pair, before any model
loads."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import fields

import pytest
import torch
from trl import DPOConfig
from trl.trainer.dpo_trainer import DataCollatorForPreference

from hf_finetune.core.errors import run_cli
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.methods.preference.arguments import LOSS_TYPES
from hf_finetune.methods.preference.train import main
from hf_finetune.methods.text import INSTRUCTION_RUN
from hf_finetune.methods.text.pair_encoding import encode_pair, encode_pairs
from hf_finetune.methods.text.pairs import load_preference_data
from hf_finetune.methods.text.prompt import format_prompt, prompt_ids
from hf_finetune.recipes.preference import DEFAULTS

BOOK_FILE = ("data", "llms_from_scratch_instruction", "instruction-data-with-preference.json")
IDENTICAL_PAIRS = [123, 227, 401, 567, 629, 677]  # entries of the book's file whose chosen == rejected


@pytest.fixture(scope="module")
def book_json():
    from conftest import shared_path

    return shared_path(*BOOK_FILE)


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
    return load_tokenizer(str(gpt2_tokenizer_dir))


def test_the_first_book_pair_is_the_instruction_prompt_and_two_answers_learned_alone(book_json, tokenizer):
    data = load_preference_data(str(book_json), None, None, drop_identical_pairs=True)
    entry = data.splits["train"][0]
    assert entry["chosen"] == 'The spelling of the given phrase "freind" is incorrect, the correct spelling is "friend".'
    assert entry["rejected"].startswith('The spelling of the given phrase "freind" is flat out wrong, get it together')
    encoded, cut = encode_pair(tokenizer, entry, 1024, "--max_length 1024 tokens")
    assert not cut
    prompt = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nEvaluate the following phrase by transforming it into the spelling given."
        "\n\n### Input:\nfreind --> friend\n\n### Response:\n"
    )
    assert tokenizer.decode(encoded["prompt_ids"]) == prompt == format_prompt(entry["instruction"], entry["input"])
    request, header = prompt_ids(tokenizer, entry["instruction"], entry["input"])
    assert encoded["prompt_ids"] == request + header, "the instruction method's prompt ids, id for id"
    assert tokenizer.decode(encoded["chosen_ids"]) == entry["chosen"] + "<|endoftext|>"
    assert tokenizer.decode(encoded["rejected_ids"]) == entry["rejected"] + "<|endoftext|>"

    # The batch TRL's DPOTrainer trains on: its collator (the one it builds), then its labels
    # (input_ids where completion_mask is 1, else -100): the answers and their end-of-text only.
    batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=1024)([encoded])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    chosen_row, rejected_row = labels.tolist()
    assert [token for token in chosen_row if token != -100] == encoded["chosen_ids"]
    assert [token for token in rejected_row if token != -100] == encoded["rejected_ids"]
    assert chosen_row[: len(encoded["prompt_ids"])] == [-100] * len(encoded["prompt_ids"])
    assert batch["input_ids"][0, : len(encoded["prompt_ids"])].tolist() == encoded["prompt_ids"]
    assert torch.equal(batch["attention_mask"][1, : batch["completion_mask"][1].sum() + len(encoded["prompt_ids"])],
                       torch.ones(len(encoded["rejected_ids"]) + len(encoded["prompt_ids"]), dtype=torch.long))


def test_the_book_split_in_file_order_leaves_out_the_six_identical_pairs(book_json, tmp_path):
    # The registered name reads the cached, checksum-verified copy (here: the shared file put in the cache).
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(book_json, cache / "instruction-data-with-preference.json")
    data = load_preference_data("preference_data", None, str(cache))
    book = json.loads(book_json.read_text())
    assert data.sizes() == {"train": 935 - 6, "validation": 55, "test": 110}
    assert data.splits["test"][0]["place"] == f"{cache / 'instruction-data-with-preference.json'}, entry 936"
    assert data.splits["test"]["chosen"] == [entry["chosen"] for entry in book[935:1045]]
    assert data.splits["validation"]["chosen"] == [entry["chosen"] for entry in book[1045:]]
    identical = "left out 6 pair(s) whose chosen and rejected answers are the same text (train 6, validation 0, test 0)"
    assert identical in data.notes
    places = set(data.splits["train"]["place"])
    assert all(not any(place.endswith(f"entry {number}") for place in places) for number in IDENTICAL_PAIRS)
    assert len(places) == 929


def test_prompt_chosen_rejected_data_reads_the_prompt_as_the_instruction(tmp_path, tokenizer):
    rows = [{"prompt": f"Say {word}.", "chosen": f"Gladly: {word}.", "rejected": f"{word}, fine."} for word in "abcdefghij"]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    data = load_preference_data(str(tmp_path / "pairs.jsonl"), None, None, split="0.8,0.1,0.1")
    assert "prompt/chosen/rejected data: prompt read as the instruction" in data.notes
    assert data.sizes() == {"train": 8, "validation": 1, "test": 1}
    assert data.splits["train"][0]["instruction"] == "Say a." and data.splits["train"][0]["input"] == ""
    assert data.splits["train"][1]["place"] == f"{tmp_path / 'pairs.jsonl'}, line 2"


def test_dedupe_leaves_no_pair_in_two_splits(book_json, tmp_path):
    pairs = book_entries(book_json)[:20]  # split 0.8,0.1,0.1 in file order: test = pairs[16:18]
    pairs[3] = dict(pairs[16])
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    both = load_preference_data(str(tmp_path / "pairs.json"), None, None, split="0.8,0.1,0.1")
    assert set(both.splits["test"]["chosen"]) & set(both.splits["train"]["chosen"]), "without --dedupe the copy leaks"
    kept = load_preference_data(str(tmp_path / "pairs.json"), None, None, split="0.8,0.1,0.1", dedupe=True)
    assert "--dedupe dropped 1 duplicate pairs (1 exact, 0 near): 20 -> 19" in kept.notes
    chosen = {name: set(kept.splits[name]["chosen"]) for name in ("train", "validation", "test")}
    assert not chosen["test"] & chosen["train"] and not chosen["validation"] & chosen["train"]
    assert sum(kept.sizes().values()) == 19


def test_a_long_pair_loses_the_end_of_its_request_never_an_answer(tokenizer):
    entry = {"instruction": "Summarise this. " * 100, "input": "", "chosen": "Short.", "rejected": "Also short.",
             "place": "pairs.json, entry 7"}
    full, _ = encode_pair(tokenizer, entry, 4096, "--max_length 4096 tokens")
    encoded, cut = encode_pair(tokenizer, entry, 100, "--max_length 100 tokens")
    assert cut and len(encoded["prompt_ids"]) + len(encoded["rejected_ids"]) == 100
    assert encoded["chosen_ids"] == full["chosen_ids"] and encoded["rejected_ids"] == full["rejected_ids"]
    _, header = prompt_ids(tokenizer, entry["instruction"])
    kept = len(encoded["prompt_ids"]) - len(header)
    assert encoded["prompt_ids"] == full["prompt_ids"][:kept] + header, "the request's start, then the response header"
    with pytest.raises(Exception, match=re.escape("--max_length: pairs.json, entry 7: the prompt")):
        encode_pair(tokenizer, {**entry, "rejected": "word " * 200}, 100, "--max_length 100 tokens")


def test_every_split_is_encoded_and_the_cut_requests_counted(book_json, tokenizer):
    data = load_preference_data(str(book_json), None, None, drop_identical_pairs=True)
    encoded, cut = encode_pairs(data.splits, tokenizer, 96, "--max_length 96 tokens")
    assert {name: len(split) for name, split in encoded.items()} == data.sizes()
    assert encoded["train"].column_names == ["prompt_ids", "chosen_ids", "rejected_ids"]
    assert cut["train"] > 0 and all(
        len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= 96 for row in encoded["train"]
    )


def test_the_loss_types_are_those_trl_offers():
    help_text = next(field for field in fields(DPOConfig) if field.name == "loss_type").metadata["help"]
    assert set(LOSS_TYPES) == set(re.findall(r"`'(\w+)'`", help_text))


# Bad data, each through the command as a user meets it: one sentence, exit 2, before the model loads.


def book_entries(book_json, count=40) -> list[dict]:
    entries = json.loads(book_json.read_text())[:count]
    return [entry for entry in entries if entry["chosen"] != entry["rejected"]]


def write(folder, name, entries) -> list[str]:
    (folder / name).write_text(json.dumps(entries, indent=1))
    return ["--dataset", str(folder / name)]


def case_missing_chosen_column(d, book):
    entries = [{key: value for key, value in entry.items() if key != "chosen"} for entry in book]
    return write(d, "no_chosen.json", entries), (
        "--chosen_column: {d}/no_chosen.json has no 'chosen' column (it has instruction, input, output, rejected); "
        "name the column that holds the preferred answer with --chosen_column."
    )


def case_wrong_rejected_flag(d, book):
    return [*write(d, "pairs.json", book), "--rejected_column", "worse"], (
        "--rejected_column: {d}/pairs.json has no 'worse' column"
    )


def case_null_rejected(d, book):
    book[6]["rejected"] = None
    return write(d, "null.json", book), "--dataset: {d}/null.json, entry 7: 'rejected' is missing or null"


def case_empty_chosen(d, book):
    book[11]["chosen"] = "   "
    return write(d, "empty.json", book), "--dataset: {d}/empty.json, entry 12: 'chosen' is empty"


def case_empty_instruction(d, book):
    book[2]["instruction"] = ""
    return write(d, "empty.json", book), "--dataset: {d}/empty.json, entry 3: 'instruction' is empty"


def case_chosen_equals_rejected(d, book):
    book[20]["rejected"] = book[20]["chosen"] + " "
    return write(d, "same.json", book), (
        "--dataset: {d}/same.json, entry 21: 'chosen' and 'rejected' are the same text, so the pair prefers nothing; "
        "make them differ, or pass --drop_identical_pairs true to leave such pairs out."
    )


def case_conversational_answers(d, book):
    rows = [{"prompt": entry["instruction"], "chosen": [{"role": "assistant", "content": entry["chosen"]}],
             "rejected": [{"role": "assistant", "content": entry["rejected"]}]} for entry in book]  # fmt: skip
    (d / "chat.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    return ["--dataset", str(d / "chat.jsonl")], "--dataset: {d}/chat.jsonl, line 1: 'chosen' is a list, not text"


def case_no_room_for_the_answers(d, book):
    return [*write(d, "pairs.json", book), "--max_length", "24"], (
        "--max_length: {d}/pairs.json, entry 1: the prompt (54 tokens) and its longer answer (27 tokens) do not fit "
        "in --max_length 24 tokens, even with the request cut; raise --max_length, or shorten or leave out that pair."
    )


def case_unknown_loss(d, book):
    return [*write(d, "pairs.json", book), "--loss_type", "sigmoid,kto"], "--loss_type: 'kto' is not a loss TRL's"


def case_exo_pair_without_smoothing(d, book):
    return [*write(d, "pairs.json", book), "--loss_type", "exo_pair"], "--loss_type exo_pair needs --label_smoothing above 0"


def case_url_for_a_file(d, book):
    return [*write(d, "pairs.json", book), "--dataset_url", "https://example.org/pairs.json"], (
        "--dataset_url: only a registered dataset"
    )


def case_group_by_length(d, book):
    return [*write(d, "pairs.json", book), "--train_sampling_strategy", "group_by_length"], (
        "--train_sampling_strategy group_by_length: a preference pair has two lengths"
    )


CASES = [value for name, value in sorted(globals().items()) if name.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__[5:] for case in CASES])
def test_bad_data_gives_one_sentence_before_the_model_loads(case, tmp_path, book_json, gpt2_tokenizer_dir, capsys,
                                                            monkeypatch):  # fmt: skip
    def model_loaded(*args, **kwargs):
        raise AssertionError("the model loaded: the mistake was found too late")

    monkeypatch.setattr("hf_finetune.core.run.method.load_causal_lm", model_loaded)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    flags, message = case(inputs, book_entries(book_json))
    output = tmp_path / "run"
    # A tokenizer folder holds no model: the data must be refused before one would load.
    argv = ["--model_name_or_path", str(gpt2_tokenizer_dir), "--output_dir", str(output), *flags]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in error
    error_lines = [line for line in error.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message.format(d=inputs) in error_lines[0], error[-1500:]
    assert not output.exists() or not any(output.iterdir()), "nothing may be written for bad data"


def test_the_recipe_says_to_train_the_instruction_run_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no outputs/instruction here
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda args: main(args, defaults=DEFAULTS), ["--output_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --model_name_or_path: {INSTRUCTION_RUN} does not exist; train the instruction run first "
        f"(hf-finetune instruction), or start from another causal LM with --model_name_or_path."
    )
