"""Conversation parsing, the exact label vectors of the three methods, and TRL's agreement with ours."""

from __future__ import annotations

import datasets
import pytest

from hf_finetune.core.errors import UserError
from hf_finetune.methods.chat.conversations import (
    ASSISTANT,
    SYSTEM,
    USER,
    ChatForm,
    Turn,
    conversation_from_row,
    conversations_from_dataset,
    parse_text_form,
    render_text,
)
from hf_finetune.methods.chat.encoding import (
    COPY_LABELS,
    IGNORE_INDEX,
    MASKED,
    chat_template,
    conversation_records,
    encode_conversation,
    encode_for_trainer,
    encode_prompt,
    labels_for,
    prompt_completion_records,
)

M = IGNORE_INDEX
FORM = ChatForm()
QUESTION = 'How do you say "dog" in Spanish?'
SINGLE = [Turn(USER, QUESTION), Turn(ASSISTANT, "perro")]
MULTI = [
    Turn(USER, QUESTION),
    Turn(ASSISTANT, "perro"),
    Turn(USER, 'And "water"?'),
    Turn(ASSISTANT, "agua"),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A small byte-level BPE tokenizer with <s> </s> <pad> <unk>, as Bloom's."""
    from hf_finetune.tiny import train_tokenizer

    corpus = tmp_path_factory.mktemp("chat") / "corpus.txt"
    corpus.write_text(
        "".join(render_text(SINGLE, FORM) + render_text(MULTI, FORM) + "\n" for _ in range(3)), encoding="utf-8"
    )
    trained = train_tokenizer([str(corpus)], 300, "bloom")
    trained.padding_side = "right"
    return trained


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- parsing -------------------------------------------------------------------------------


def test_text_form_parses_into_turns_and_drops_written_out_special_tokens():
    text = '\n\n### Human: How do you say "dog" in Spanish?\n\n### Assistant:<s> perro</s>\n\n### Human: And?\n\n### Assistant: x'
    assert parse_text_form(text, FORM, drop_strings=("<s>", "</s>")) == [
        Turn(USER, QUESTION),
        Turn(ASSISTANT, "perro"),
        Turn(USER, "And?"),
        Turn(ASSISTANT, "x"),
    ]


def test_every_data_shape_gives_the_same_conversation():
    rows = [
        {"text": render_text(SINGLE, FORM)},
        {"prompt": QUESTION, "completion": "perro"},
        {"prompt": f"\n\n### Human: {QUESTION}\n\n### Assistant:", "completion": " perro"},
        {"prompt": [{"role": "user", "content": QUESTION}], "completion": [{"role": "assistant", "content": "perro"}]},
        {"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "perro"}]},
        {"conversations": [{"from": "human", "value": QUESTION}, {"from": "gpt", "value": "perro"}]},
    ]
    for row in rows:
        assert conversation_from_row(row, "text", FORM) == SINGLE, row


def test_bad_rows_name_the_row_and_the_problem():
    data = datasets.Dataset.from_dict({"text": [render_text(SINGLE, FORM), "no tags at all"]})
    with pytest.raises(UserError, match=r"data.jsonl, row 2: it does not start with a '### Human:'"):
        conversations_from_dataset(data, "text", FORM, "data.jsonl")
    roles = datasets.Dataset.from_list([{"messages": [{"role": "robot", "content": "hi"}]}])
    with pytest.raises(UserError, match=r"row 1: turn 1 has role 'robot', not one of system, user, assistant"):
        conversations_from_dataset(roles, "text", FORM, "data.jsonl")
    human_only = datasets.Dataset.from_dict({"text": ["### Human: hello?"]})
    with pytest.raises(UserError, match=r"row 1: the conversation has no assistant turn"):
        conversations_from_dataset(human_only, "text", FORM, "data.jsonl")


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "Hi?", "completion": None}, "'completion' is null; a prompt-completion row needs both"),
        ({"prompt": None, "completion": "hola"}, "'prompt' is null"),
        ({"prompt": "Hi?"}, "'completion' is missing"),
        ({"messages": [{"role": "user", "content": None}]}, r"the content of turn 1 \(user\) is null, not text"),
        ({"messages": [{"role": "user"}]}, "turn 1 has no 'content' key"),
        ({"messages": []}, "'messages' is an empty conversation"),
        ({"messages": None}, "'messages' is null"),
        ({"messages": "hi"}, "'messages' is text, not a list of turns"),
        ({"messages": ["hi"]}, "turn 1 is text, not an object"),
        ({"messages": [{"role": 3, "content": "x"}]}, "turn 1 has role 3"),
        ({"prompt": "Hi?", "completion": 3}, "'completion' is a number; they must both be text"),
        ({"text": None}, "'text' is null, not text"),
        ({"question": "x"}, r"none of the columns 'text', 'prompt'\+'completion', 'messages' \(it has question\)"),
    ],
)
def test_each_bad_row_names_its_real_cause(row, message):
    with pytest.raises(ValueError, match=message):
        conversation_from_row(row, "text", FORM)


# --- label vectors -------------------------------------------------------------------------


def test_single_turn_labels_of_copy_and_masked(tokenizer):
    prompt = ids(tokenizer, f"\n\n### Human: {QUESTION}") + ids(tokenizer, "\n\n### Assistant:")
    answer = ids(tokenizer, " perro") + [tokenizer.eos_token_id]
    encoded = encode_conversation(SINGLE, FORM, tokenizer)
    assert encoded.input_ids == prompt + answer
    # Segment-wise ids are the ids of the whole text: training sees what generation sees.
    assert encoded.input_ids == ids(tokenizer, render_text(SINGLE, FORM) + tokenizer.eos_token)
    assert labels_for(COPY_LABELS, encoded) == prompt + answer
    assert labels_for(MASKED, encoded) == [M] * len(prompt) + answer
    assert encode_prompt(SINGLE[:1], FORM, tokenizer) == prompt


def test_multi_turn_every_answer_and_its_eos_is_a_target(tokenizer):
    eos = tokenizer.eos_token_id
    human1 = ids(tokenizer, f"\n\n### Human: {QUESTION}") + ids(tokenizer, "\n\n### Assistant:")
    human2 = ids(tokenizer, '\n\n### Human: And "water"?') + ids(tokenizer, "\n\n### Assistant:")
    answer1, answer2 = ids(tokenizer, " perro") + [eos], ids(tokenizer, " agua") + [eos]
    encoded = encode_conversation(MULTI, FORM, tokenizer)
    assert encoded.input_ids == human1 + answer1 + human2 + answer2
    assert labels_for(MASKED, encoded) == [M] * len(human1) + answer1 + [M] * len(human2) + answer2
    assert labels_for(COPY_LABELS, encoded) == encoded.input_ids


def test_tutorial_special_tokens_put_bos_after_each_assistant_tag(tokenizer):
    form = ChatForm(bos_after_assistant_tag=True)
    prompt = ids(tokenizer, f"\n\n### Human: {QUESTION}") + ids(tokenizer, "\n\n### Assistant:") + [tokenizer.bos_token_id]
    answer = ids(tokenizer, " perro") + [tokenizer.eos_token_id]
    encoded = encode_conversation(SINGLE, form, tokenizer)
    assert labels_for(MASKED, encoded) == [M] * len(prompt) + answer
    assert tokenizer.decode(encoded.input_ids) == render_text(SINGLE, FORM).replace(
        "### Assistant:", "### Assistant:<s>"
    ) + "</s>"


def test_truncation_inside_an_answer_keeps_its_first_tokens_and_no_eos(tokenizer):
    turns = [Turn(USER, QUESTION), Turn(ASSISTANT, "murciélago")]  # an unseen word: several tokens
    prompt_length = len(encode_prompt(turns[:1], FORM, tokenizer))
    answer = ids(tokenizer, " murciélago")
    assert len(answer) >= 3
    encoded = encode_conversation(turns, FORM, tokenizer, max_length=prompt_length + 2)
    assert encoded.truncated
    assert labels_for(MASKED, encoded) == [M] * prompt_length + answer[:2]


def test_truncation_inside_the_human_turn_drops_the_example_and_says_so(tokenizer):
    prompt_length = len(encode_prompt(SINGLE[:1], FORM, tokenizer))
    data, counts = encode_for_trainer([SINGLE, SINGLE], MASKED, FORM, tokenizer, max_length=prompt_length - 3)
    assert len(data) == 0 and counts["dropped"] == 2 and counts["truncated"] == 2
    data, counts = encode_for_trainer([SINGLE], COPY_LABELS, FORM, tokenizer, max_length=prompt_length - 3)
    assert len(data) == 1 and counts["loss_tokens"] == prompt_length - 4  # every position after the first


def test_a_conversation_ending_with_a_human_turn_masks_it_and_adds_no_eos(tokenizer):
    turns = SINGLE + [Turn(USER, "Thanks!")]
    encoded = encode_conversation(turns, FORM, tokenizer)
    tail = ids(tokenizer, "\n\n### Human: Thanks!")
    assert encoded.input_ids[-len(tail) :] == tail
    masked = labels_for(MASKED, encoded)
    assert masked[-len(tail) :] == [M] * len(tail)
    assert masked[-len(tail) - 1] == tokenizer.eos_token_id


def test_an_empty_answer_still_teaches_the_eos(tokenizer):
    turns = [Turn(USER, QUESTION), Turn(ASSISTANT, "")]
    encoded = encode_conversation(turns, FORM, tokenizer)
    prompt = encode_prompt(turns[:1], FORM, tokenizer)
    assert encoded.input_ids == prompt + [tokenizer.eos_token_id]
    assert labels_for(MASKED, encoded) == [M] * len(prompt) + [tokenizer.eos_token_id]


def test_system_turns_are_context_never_targets(tokenizer):
    turns = [Turn(SYSTEM, "Translate."), *SINGLE]
    masked = labels_for(MASKED, encode_conversation(turns, FORM, tokenizer))
    system = ids(tokenizer, "\n\n### System: Translate.")
    assert masked[: len(system)] == [M] * len(system)


def test_chat_template_writes_the_same_ids_and_marks_the_same_targets(tokenizer):
    for form in (FORM, ChatForm(bos_after_assistant_tag=True)):
        messages = [{"role": t.role, "content": t.content} for t in MULTI + [Turn(USER, "Thanks!")]]
        rendered = tokenizer.apply_chat_template(
            messages, chat_template=chat_template(form), tokenize=True, return_dict=True,
            return_assistant_tokens_mask=True,
        )
        encoded = encode_conversation([Turn(m["role"], m["content"]) for m in messages], form, tokenizer)
        assert rendered["input_ids"] == encoded.input_ids
        assert [bool(bit) for bit in rendered["assistant_masks"]] == encoded.is_target


# --- TRL agrees with the masked method -----------------------------------------------------


def trl_labels(tokenizer, data: datasets.Dataset, form: ChatForm, messages: bool) -> list[list[int]]:
    from transformers import TrainingArguments
    from trl import SFTTrainer

    from hf_finetune.methods.chat.arguments import sft_config_from
    from hf_finetune.tiny import build_model

    tokenizer.chat_template = chat_template(form)
    model = build_model("bloom", tokenizer, layers=1, width=32, heads=2, context=64)
    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    trainer = SFTTrainer(
        model=model, args=sft_config_from(args, None, messages), train_dataset=data, processing_class=tokenizer
    )
    return trainer.train_dataset["labels"]


@pytest.mark.parametrize("special_tokens", [False, True])
def test_trl_completion_only_targets_equal_the_masked_targets(tokenizer, special_tokens):
    form = ChatForm(bos_after_assistant_tag=special_tokens)
    conversations = [SINGLE, [Turn(USER, "hello?"), Turn(ASSISTANT, "hola")], [Turn(USER, QUESTION), Turn(ASSISTANT, "")]]
    ours, _ = encode_for_trainer(conversations, MASKED, form, tokenizer, None)
    from_pairs = trl_labels(tokenizer, prompt_completion_records(conversations, form, tokenizer), form, messages=False)
    assert from_pairs == ours["labels"]
    multi = conversations + [MULTI, MULTI + [Turn(USER, "Thanks!")]]
    ours, _ = encode_for_trainer(multi, MASKED, form, tokenizer, None)
    from_messages = trl_labels(tokenizer, conversation_records(multi), form, messages=True)
    assert from_messages == ours["labels"]


# --- logits at targets only ----------------------------------------------------------------


def test_target_logits_loss_and_gradients_equal_the_full_logits_ones(tokenizer):
    import torch
    from transformers import DataCollatorForSeq2Seq

    from hf_finetune.core.model.trainers import supports_target_logits, target_loss
    from hf_finetune.tiny import build_model

    torch.manual_seed(0)
    model = build_model("bloom", tokenizer, layers=1, width=32, heads=2, context=64)
    assert supports_target_logits(model)
    data, counts = encode_for_trainer([SINGLE, MULTI], MASKED, FORM, tokenizer, None)
    batch = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=M)(list(data))
    assert (batch["labels"] == M).any()  # padding and human turns are both in play

    full = model(**batch).loss
    full.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_sum, count = target_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    fast = loss_sum / count
    fast.backward()
    assert count == counts["loss_tokens"]  # one row of logits per target, no more
    assert torch.allclose(fast, full, atol=1e-6)
    for got, want in zip((p.grad for p in model.parameters()), expected):
        assert torch.allclose(got, want, atol=1e-6)
