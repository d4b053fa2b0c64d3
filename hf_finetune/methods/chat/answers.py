"""Greedy answers of a chat model: the training questions and a held-out one during a run, and
any question to a saved run (`python -m hf_finetune.chat_answer`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.generation import greedy_generate
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import load_causal_lm_run, require_saved_run

from .arguments import ChatArguments
from .conversations import ASSISTANT, USER, ChatForm, Conversation, Turn
from .encoding import encode_prompt


@dataclass
class Question:
    turns: Conversation  # ends before the assistant turn to be generated
    expected: str | None

    @property
    def text(self) -> str:
        return self.turns[-1].content


def training_questions(conversations: list[Conversation], limit: int) -> list[Question]:
    """The last answer of the first `limit` conversations, asked with the real history before it."""
    questions = []
    for turns in conversations[:limit]:
        last = max(index for index, turn in enumerate(turns) if turn.role == ASSISTANT)
        questions.append(Question(turns[:last], turns[last].content))
    return questions


def greedy_answers(model, tokenizer, questions: list[Question], form: ChatForm, max_new_tokens: int) -> list[str]:
    prompts = [encode_prompt(question.turns, form, tokenizer) for question in questions]
    return [answer.strip() for answer in greedy_generate(model, tokenizer, prompts, max_new_tokens)]


class AnswerTracker(TrainerCallback):
    """Greedy answers to the training questions at every epoch's end: when does the model know them all?"""

    def __init__(self, questions: list[Question], form: ChatForm, max_new_tokens: int):
        self.questions, self.form, self.max_new_tokens = questions, form, max_new_tokens
        self.exact_per_epoch: list[dict] = []
        self.seconds = 0.0  # kept out of the reported training time

    def on_epoch_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        started = time.perf_counter()
        answers = greedy_answers(model, processing_class, self.questions, self.form, self.max_new_tokens)
        self.seconds += time.perf_counter() - started
        exact = sum(answer == question.expected for answer, question in zip(answers, self.questions))
        epoch = round(state.epoch, 2)
        self.exact_per_epoch.append({"epoch": int(epoch) if epoch.is_integer() else epoch, "exact": exact})

    def first_epoch_all_exact(self) -> float | None:
        return next((point["epoch"] for point in self.exact_per_epoch if point["exact"] == len(self.questions)), None)


def answer_questions(model, tokenizer, chat_args: ChatArguments, conversations: list[Conversation]) -> dict:
    form = chat_args.form()
    questions = training_questions(conversations, chat_args.report_examples)
    heldout = [Question([Turn(USER, chat_args.heldout_question)], chat_args.heldout_answer)] if chat_args.heldout_question else []
    answers = greedy_answers(model, tokenizer, questions + heldout, form, chat_args.max_new_tokens)
    training = [
        {"question": q.text, "expected": q.expected, "answer": a} for q, a in zip(questions, answers[: len(questions)])
    ]
    figures = {
        "training_answers": training,
        "training_exact": sum(item["answer"] == item["expected"] for item in training),
        "training_asked": len(training),
    }
    if heldout:
        figures["heldout"] = {"question": heldout[0].text, "expected": heldout[0].expected, "answer": answers[-1]}
    return figures


def answer_run(run_dir: str | Path, questions: list[str], max_new_tokens: int = 32) -> list[str]:
    """Greedy answers of a saved chat run, prompted by the chat template saved with its tokenizer."""
    run_dir = require_saved_run(run_dir)
    tokenizer = load_tokenizer(str(run_dir))
    if not tokenizer.chat_template:
        raise UserError(f"{run_dir} has no chat template; it was not trained by recipes/spanish_chat.py.")
    model = load_causal_lm_run(run_dir).eval()  # a full model or a LoRA adapter run
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        for question in questions
    ]
    return [answer.strip() for answer in greedy_generate(model, tokenizer, prompts, max_new_tokens)]
