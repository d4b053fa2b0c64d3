"""What the leakage check compares for the instruction and chat methods, and what --dedupe keeps:
the book's 1100 instruction entries (no exact copy, a few near ones), and chat conversations with
a held-out exchange."""

from __future__ import annotations

import pytest

from hf_finetune.core.data.leakage import check_leakage
from hf_finetune.core.data.sources import load_source
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.methods.chat.conversations import ASSISTANT, USER, Turn
from hf_finetune.methods.chat.train import ARGUMENTS as CHAT_ARGUMENTS
from hf_finetune.methods.chat.train import ChatMethod
from hf_finetune.methods.text.instructions import entry_texts, prepare_instructions


@pytest.fixture(scope="module")
def instruction_source(instruction_json):
    return load_source(str(instruction_json))


def test_an_entry_is_compared_without_the_prompt_format(instruction_source):
    data = prepare_instructions(instruction_source)
    first = data.splits["train"][0]
    assert entry_texts(data.splits["train"])[0] == f"{first['instruction']}\n{first['input']}\n{first['output']}"
    assert data.split_texts()["test"] == entry_texts(data.splits["test"])


def test_the_book_entries_have_no_exact_copy_across_splits_and_a_few_near_ones(instruction_source):
    summary = check_leakage(prepare_instructions(instruction_source).split_texts()).to_dict()
    across = {(item["split"], item["in"]): (item["exact"], item["near"]) for item in summary["across"]}
    assert across == {("validation", "train"): (0, 7), ("test", "train"): (0, 1), ("test", "validation"): (0, 0)}
    assert summary["within"]["train"]["near"] == 25
    [example] = summary["across"][1]["near_examples"]
    assert "Someone left a note." in example["text"] and "Someone left a message." in example["match"]


def test_dedupe_drops_the_near_copies_before_the_file_order_split(instruction_source):
    data = prepare_instructions(instruction_source, dedupe=True)
    assert data.notes[0] == "--dedupe dropped 32 duplicate entries (0 exact, 32 near): 1100 -> 1068"
    assert data.sizes() == {"train": 907, "validation": 55, "test": 106}  # 1068 cut 0.85/0.05/0.10 in file order
    summary = check_leakage(data.split_texts()).to_dict()
    assert all(item["exact"] == item["near"] == 0 for item in summary["across"])
    assert all(counts["exact"] == counts["near"] == 0 for counts in summary["within"].values())


DEMO = [
    [Turn(USER, 'How do you say "dog" in Spanish?'), Turn(ASSISTANT, "perro")],
    [Turn(USER, 'How do you say "day" in Spanish?'), Turn(ASSISTANT, "día")],  # the held-out exchange
    [Turn(USER, 'how do you say "DOG" in spanish'), Turn(ASSISTANT, "Perro.")],  # the first, once normalised
    [Turn(USER, 'How do you say "water" in Spanish?'), Turn(ASSISTANT, "agua")],
]


def chat_method(tmp_path, *flags) -> ChatMethod:
    argv = ["--output_dir", str(tmp_path), "--heldout_question", 'How do you say "day" in Spanish?',
            "--heldout_answer", "día", *flags]  # fmt: skip
    model_args, chat_args, run_args, training_args, lora_args = parse_arguments(CHAT_ARGUMENTS, argv)
    method = ChatMethod(model_args, chat_args, run_args, training_args, lora_args, "masked", DEMO)
    method.load_data()
    return method


def test_chat_compares_the_turns_and_the_held_out_exchange_with_the_training_conversations(tmp_path):
    method = chat_method(tmp_path)
    texts = method.split_texts()
    assert texts["held-out"] == ['How do you say "day" in Spanish?\ndía']
    assert texts["train"][0] == 'How do you say "dog" in Spanish?\nperro'
    summary = check_leakage(texts).to_dict()
    [held_out] = summary["across"]
    assert (held_out["split"], held_out["in"], held_out["exact"], held_out["near"]) == ("held-out", "train", 1, 0)
    assert (summary["within"]["train"]["exact"], summary["within"]["train"]["near"]) == (1, 0)


def test_chat_dedupe_keeps_the_held_out_exchange_out_of_training(tmp_path):
    method = chat_method(tmp_path, "--dedupe")
    assert method.conversations == [DEMO[0], DEMO[3]]
    assert method.dedupe_note == "--dedupe dropped 2 duplicate conversations (2 exact, 0 near): train 4 -> 2"
    assert check_leakage(method.split_texts()).plan_line() == (
        "no text repeats within or across train, held-out (exact or near)"
    )
