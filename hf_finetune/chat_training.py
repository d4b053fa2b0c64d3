"""Causal LM fine-tuning on conversations, three ways (copy-labels, masked, TRL completion-only).

`run_chat` trains each chosen method from the same starting weights, on the same data, with the
same TrainingArguments, and answers the training questions and a held-out one by greedy
generation. Recipes (recipes/spanish_chat.py) choose the defaults and the demo conversations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

from .arguments import ModelArguments, RunArguments, config_snapshot, parse_arguments
from .cards import chat_card
from .chat_data import ASSISTANT, USER, ChatForm, Conversation, Turn, load_conversations
from .chat_encoding import (
    COMPLETION_ONLY,
    METHODS,
    chat_template,
    conversation_records,
    encode_for_trainer,
    encode_prompt,
    is_single_exchange,
    loss_token_count,
    prompt_completion_records,
)
from .chat_results import write_chat_results
from .errors import UserError, run_cli
from .hub import defer_push_to_end, prepare_hub_push, push_run, repo_creation_reported
from .lora import LoraArguments, apply_lora, describe_lora, save_trained_model
from .modeling import TrainablePolicy, apply_causal_lm_policy, count_parameters, load_causal_lm, load_tokenizer
from .reliability import train_reliably
from .target_loss import TargetLossTrainer, supports_target_logits
from .training import device_name, guard_output_dir, precision_name, prepare_training_args, print_plan

COMPLETION_FORMATS = ("auto", "prompt_completion", "messages")


@dataclass
class ChatArguments:
    method: str = field(
        default="masked",
        metadata={"help": "copy_labels (learn the whole text), masked (learn the answers only) or completion_only (TRL)."},
    )
    compare: bool = field(default=False, metadata={"help": "Train all three methods and write one comparison table."})
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "A local file/folder or Hub id of conversations: a text column in the '### Human: ... "
            "### Assistant: ...' form, prompt/completion columns, or messages lists. Default: the recipe's demo set."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column of text-form conversations."})
    human_tag: str = field(default="\n\n### Human:", metadata={"help": "Tag in front of each human turn."})
    assistant_tag: str = field(default="\n\n### Assistant:", metadata={"help": "Tag in front of each assistant turn."})
    special_tokens: bool = field(
        default=False,
        metadata={"help": "The tutorial's special tokens: beginning-of-sequence after each assistant tag."},
    )
    completion_format: str = field(
        default="auto",
        metadata={
            "help": "Data handed to TRL for completion_only: prompt_completion (completion_only_loss), messages "
            "(assistant_only_loss with a {% generation %} chat template), or auto (prompt_completion when every "
            "conversation is a single exchange)."
        },
    )
    max_length: int | None = field(default=None, metadata={"help": "Truncate conversations to this many tokens."})
    target_logits_only: bool = field(
        default=True,
        metadata={
            "help": "copy_labels/masked: compute LM-head logits only where a label is learned (same loss, less "
            "compute); --target_logits_only false gives the plain Trainer loss."
        },
    )
    heldout_question: str | None = field(default=None, metadata={"help": "A question not in the training data."})
    heldout_answer: str | None = field(default=None, metadata={"help": "Its expected answer (for the table)."})
    max_new_tokens: int = field(default=16, metadata={"help": "Longest generated answer."})
    answers_every_epoch: bool = field(
        default=True,
        metadata={"help": "Answer the training questions at every epoch's end, to report when all are right."},
    )
    report_examples: int = field(default=10, metadata={"help": "Training questions answered in the table."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloads are cached."})

    def form(self) -> ChatForm:
        return ChatForm(human_tag=self.human_tag, assistant_tag=self.assistant_tag, bos_after_assistant_tag=self.special_tokens)

    def methods(self) -> tuple[str, ...]:
        if self.method not in METHODS:
            raise UserError(f"--method: '{self.method}' is not one of {', '.join(METHODS)}.")
        if self.completion_format not in COMPLETION_FORMATS:
            raise UserError(f"--completion_format: '{self.completion_format}' is not one of {', '.join(COMPLETION_FORMATS)}.")
        return METHODS if self.compare else (self.method,)


CHAT_ARGUMENTS = (ModelArguments, ChatArguments, RunArguments, TrainingArguments, LoraArguments)


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


@torch.inference_mode()
def greedy_answers(model, tokenizer, questions: list[Question], form: ChatForm, max_new_tokens: int) -> list[str]:
    """Greedy answers, generated in one left-padded batch (the new tokens sit right after every prompt)."""
    if not questions:
        return []
    prompts = [encode_prompt(question.turns, form, tokenizer) for question in questions]
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    batch = {key: value.to(model.device) for key, value in batch.items()}
    was_training, use_cache = model.training, model.config.use_cache
    model.eval()
    model.config.use_cache = True
    try:
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    finally:
        model.train(was_training)
        model.config.use_cache = use_cache
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


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


def sft_config_from(args: TrainingArguments, output_dir: str, max_length: int | None, messages: bool):
    """An SFTConfig with exactly the user's TrainingArguments: SFTConfig's own defaults
    (gradient checkpointing and bf16 on, lr 2e-5) would make the comparison unfair."""
    from trl import SFTConfig

    values = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init and not f.name.startswith("_")}
    values.update(
        output_dir=output_dir,
        max_length=max_length,
        packing=False,  # Bloom ignores position_ids (ALiBi): packed sequences would see each other
        padding_free=False,
        completion_only_loss=None if messages else True,
        assistant_only_loss=messages,
        dataset_num_proc=None,
    )
    return SFTConfig(**values)


def _train_args_for(args: TrainingArguments, output_dir: str) -> TrainingArguments:
    values = {f.name: getattr(args, f.name) for f in fields(TrainingArguments) if f.init and not f.name.startswith("_")}
    return TrainingArguments(**{**values, "output_dir": output_dir})


def train_method(
    method: str,
    conversations: list[Conversation],
    model_args: ModelArguments,
    chat_args: ChatArguments,
    training_args: TrainingArguments,
    output_dir: str,
    lora_args: LoraArguments,
    skip_nonfinite_batches: bool = False,
) -> tuple[dict, Trainer, object]:
    """Train one method from the starting weights; returns its figures, trainer and tokenizer."""
    form = chat_args.form()
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code, padding_side="right")
    tokenizer.chat_template = chat_template(form)
    model = load_causal_lm(model_args.model_name_or_path, tokenizer, model_args.trust_remote_code)
    if lora_args.use_peft:
        model = apply_lora(model, lora_args)
        what_trains = describe_lora(model)
    else:
        what_trains = apply_causal_lm_policy(model, TrainablePolicy.parse(model_args.trainable))
    model.config.use_cache = False

    counts: dict = {}
    if method == COMPLETION_ONLY:
        from trl import SFTTrainer

        as_messages = chat_args.completion_format == "messages" or (
            chat_args.completion_format == "auto" and not all(is_single_exchange(turns) for turns in conversations)
        )
        if not as_messages and not all(is_single_exchange(turns) for turns in conversations):
            raise UserError(
                "--completion_format prompt_completion: some conversations have several answers or end with a human "
                "turn; use --completion_format messages (or auto)."
            )
        data = conversation_records(conversations) if as_messages else prompt_completion_records(
            conversations, form, tokenizer
        )
        with repo_creation_reported(training_args):
            trainer = SFTTrainer(
                model=model,
                args=sft_config_from(training_args, output_dir, chat_args.max_length, as_messages),
                train_dataset=data,
                processing_class=tokenizer,
            )
        labels = trainer.train_dataset["labels"]
        if not labels:  # TRL drops the examples that truncation left without a target
            raise UserError(f"--max_length {chat_args.max_length} leaves no conversation with an answer token to learn.")
        counts = {
            "format": "messages + assistant_only_loss" if as_messages else "prompt-completion + completion_only_loss",
            "dropped": len(conversations) - len(labels),
            "loss_tokens": sum(loss_token_count(row) for row in labels),
            "tokens": sum(len(row) for row in trainer.train_dataset["input_ids"]),
        }
    else:
        dataset, counts = encode_for_trainer(conversations, method, form, tokenizer, chat_args.max_length)
        if len(dataset) == 0:
            raise UserError(f"--max_length {chat_args.max_length} leaves no conversation with an answer token to learn.")
        fast = chat_args.target_logits_only and supports_target_logits(model)
        counts["loss_computation"] = "logits at targets only" if fast else "full logits"
        with repo_creation_reported(training_args):
            trainer = (TargetLossTrainer if fast else Trainer)(
                model=model,
                args=_train_args_for(training_args, output_dir),
                train_dataset=dataset,
                processing_class=tokenizer,
                data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
            )
    defer_push_to_end(trainer)

    tracker = None
    if chat_args.answers_every_epoch:
        tracker = AnswerTracker(
            training_questions(conversations, chat_args.report_examples), form, chat_args.max_new_tokens
        )
        trainer.add_callback(tracker)
    result = train_reliably(trainer, trainer.args, skip_nonfinite_batches)
    losses = [entry for entry in trainer.state.log_history if "loss" in entry]
    figures = {
        "method": method,
        **counts,
        "examples": len(trainer.train_dataset),
        # Trainer's runtime includes the callbacks: the answers generated every epoch are not training.
        "train_runtime_seconds": round(result.metrics["train_runtime"] - (tracker.seconds if tracker else 0.0), 2),
        "final_train_loss": losses[-1]["loss"] if losses else None,
        "mean_train_loss": result.training_loss,
        "epochs": training_args.num_train_epochs,
        "first_epoch_all_answers_exact": tracker.first_epoch_all_exact() if tracker else None,
        "exact_answers_per_epoch": tracker.exact_per_epoch if tracker else None,
        "history": [{"epoch": entry["epoch"], "step": entry["step"], "train_loss": entry["loss"]} for entry in losses],
        "trainable": what_trains,
    }
    figures["trainable_parameters"], figures["total_parameters"] = count_parameters(trainer.model)
    save_trained_model(trainer, output_dir, model_args.model_name_or_path, lora_args)
    return figures, trainer, tokenizer


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


def run_config(
    model_args: ModelArguments, chat_args: ChatArguments, training_args: TrainingArguments, lora_args: LoraArguments
) -> dict:
    """The flags for config.yaml. config_snapshot leaves out every key naming a token (to keep
    secrets out); these two name token counts and kinds, and a rerun needs them."""
    config = config_snapshot(model_args, chat_args, training_args, lora_args)
    config.update(special_tokens=chat_args.special_tokens, max_new_tokens=chat_args.max_new_tokens)
    return config


def run_chat(
    model_args: ModelArguments,
    chat_args: ChatArguments,
    run_args: RunArguments,
    training_args: TrainingArguments,
    lora_args: LoraArguments | None = None,
    demo: list[Conversation] | None = None,
) -> list[dict]:
    lora_args = lora_args or LoraArguments()
    methods = chat_args.methods()
    if training_args.push_to_hub and len(methods) > 1:
        raise UserError("--push_to_hub publishes one model, and --compare trains three; push a single --method.")
    guard_output_dir(training_args.output_dir, run_args.overwrite_output_dir)
    prepare_training_args(training_args)
    prepare_hub_push(training_args)
    TrainablePolicy.parse(model_args.trainable)  # a bad value fails now, not after loading data
    # Before any Trainer exists: building the reference TrainingArguments resets accelerate's state.
    config = run_config(model_args, chat_args, training_args, lora_args)
    tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.trust_remote_code)
    form = chat_args.form()
    if chat_args.dataset:
        with training_args.main_process_first(desc="loading data"):
            specials = [token for token in (tokenizer.bos_token, tokenizer.eos_token) if token]
            conversations, origin = load_conversations(
                chat_args.dataset, chat_args.text_column, form, chat_args.cache_dir, specials
            )
    elif demo:
        conversations, origin = demo, "the recipe's demo conversations"
    else:
        raise UserError("--dataset: no dataset given and this entry point has no demo set.")

    print_plan(
        {
            "methods": ", ".join(methods),
            "model": model_args.model_name_or_path,
            "data": f"{origin}: {len(conversations)} conversations, "
            f"{sum(turn.role == ASSISTANT for turns in conversations for turn in turns)} answers",
            "format": f"{form.human_tag.strip()!r} / {form.assistant_tag.strip()!r}"
            + (", bos after each assistant tag" if form.bos_after_assistant_tag else "")
            + ", eos closes each answer",
            "max length": chat_args.max_length or "none (no truncation)",
            "trainable": f"LoRA adapters (r={lora_args.lora_r}, alpha={lora_args.lora_alpha})"
            if lora_args.use_peft
            else f"--trainable {model_args.trainable} (each method's row says exactly what trained)",
            "held-out": chat_args.heldout_question or "none",
            "device": device_name(training_args),
            "precision": precision_name(training_args),
            "output": training_args.output_dir,
        },
        training_args,
    )

    rows, histories = [], {}
    for method in methods:
        folder = str(Path(training_args.output_dir) / method) if len(methods) > 1 else training_args.output_dir
        figures, trainer, method_tokenizer = train_method(
            method, conversations, model_args, chat_args, training_args, folder, lora_args, run_args.skip_nonfinite_batches
        )
        figures.update(answer_questions(trainer.model, method_tokenizer, chat_args, conversations))
        histories[method] = figures.pop("history")
        rows.append(figures)
        if method != methods[-1]:
            del trainer  # free its model before the next method loads one

    if training_args.process_index == 0:
        write_chat_results(
            Path(training_args.output_dir),
            rows,
            histories,
            examples_per_epoch=len(conversations),
            config=config,
            title=f"{model_args.model_name_or_path}: causal LM fine-tuning, {len(methods)} method(s)",
        )
    if training_args.push_to_hub:  # every process: Trainer saves collectively, the main process uploads
        [row] = rows
        push_run(trainer, chat_card(model_args.model_name_or_path, origin, row, row["trainable"], trainer.args))
    return rows


def main(argv: list[str] | None = None, defaults: dict | None = None, demo: list[Conversation] | None = None) -> list[dict]:
    model_args, chat_args, run_args, training_args, lora_args = parse_arguments(CHAT_ARGUMENTS, argv, defaults)
    return run_chat(model_args, chat_args, run_args, training_args, lora_args, demo)


if __name__ == "__main__":
    run_cli(main)
