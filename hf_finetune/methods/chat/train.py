"""Causal LM fine-tuning on conversations, after "CausalLM part 2: finetuning a model" (Theo
Lebryk, 2024), three ways that differ only in which tokens carry loss:

- copy_labels: labels = input_ids, the model learns the human text too;
- masked: human turns are -100; each answer and the end-of-sequence closing it are learned;
- completion_only: TRL's SFTTrainer builds the labels (prompt-completion data with
  completion_only_loss, or messages with assistant_only_loss for multi-turn data).

The story of one method: conversations -> the run's chat template (it writes the same text as
the encoding) -> ids and labels -> Trainer (the LM head only where labels are) or SFTTrainer,
with greedy answers to the training questions at every epoch's end -> answers to the training
and held-out questions -> comparison table. `--compare` trains all three from the same start
into subfolders and writes one table. recipes/spanish_chat.py chooses the defaults and the
demo conversations.
"""

from __future__ import annotations

from pathlib import Path

from transformers import Trainer, TrainingArguments

from hf_finetune.core.arguments import training_args_as
from hf_finetune.core.data.collate import padding_collator
from hf_finetune.core.data.leakage import first_copies
from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.model.loading import describe_model_source, fitted_max_length
from hf_finetune.core.model.trainable import count_parameters
from hf_finetune.core.model.trainers import TargetLossTrainer, supports_target_logits
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.console import logger
from hf_finetune.core.run.method import Method
from hf_finetune.core.run.series import series_folder
from hf_finetune.core.run.skeleton import run

from .answers import AnswerTracker, answer_questions, training_questions
from .arguments import ARGUMENTS, ChatArguments, sft_config_from
from .card import LOSS_METHOD_DESCRIPTIONS, chat_card
from .conversations import ASSISTANT, USER, Conversation, Turn, conversation_text, load_conversations
from .encoding import (
    COMPLETION_ONLY,
    LOSS_METHODS,
    chat_template,
    conversation_records,
    encode_for_trainer,
    longer_than,
    prompt_completion_records,
    trl_counts,
)
from .report import COMPARISON_REPORT, chat_headline, comparison_table, write_chat_results


class ChatMethod(Method):
    def __init__(self, model_args, chat_args: ChatArguments, run_args, training_args, lora_args, loss_method: str,
                 demo: list[Conversation] | None = None, writes_report: bool = True):  # fmt: skip
        super().__init__(model_args, run_args, training_args, lora_args, options=(chat_args,))
        self.chat_args, self.loss_method, self.demo, self.writes_report = chat_args, loss_method, demo, writes_report
        self.form = chat_args.form()
        self.description = f"causal LM on conversations, {LOSS_METHOD_DESCRIPTIONS[loss_method]}"

    def check_arguments(self) -> None:
        self.chat_args.check()

    def load_data(self) -> None:
        if self.chat_args.dataset:
            # Text-form rows may hold the tokenizer's bos/eos written out (as the tutorial's do): dropped.
            tokenizer = self.load_tokenizer()
            specials = [token for token in (tokenizer.bos_token, tokenizer.eos_token) if token]
            self.conversations, self.origin = load_conversations(
                self.chat_args.dataset, self.chat_args.text_column, self.form, self.chat_args.cache_dir, specials
            )
        elif self.demo:
            self.conversations, self.origin = self.demo, "the recipe's demo conversations"
        else:
            raise UserError("--dataset: no dataset given and this entry point has no demo set.")
        self.dedupe_note = ""
        if self.chat_args.dedupe:
            texts = self.split_texts()
            kept, self.dedupe_note = first_copies({name: texts[name] for name in reversed(texts)}, what="conversations")
            self.conversations = [self.conversations[index] for index in kept["train"]]

    def split_texts(self) -> dict[str, list[str]]:
        """The training conversations, and the held-out exchange (when there is one) compared with them."""
        texts = {"train": [conversation_text(turns) for turns in self.conversations]}
        question, answer = self.chat_args.heldout_question, self.chat_args.heldout_answer
        if question:
            heldout = [Turn(USER, question.strip())] + ([Turn(ASSISTANT, answer.strip())] if answer else [])
            texts["held-out"] = [conversation_text(heldout)]
        return texts

    def encode(self, tokenizer, model) -> None:
        tokenizer.chat_template = chat_template(self.form)  # saved with the model: prompts as trained
        self.max_length, self.length_note = fitted_max_length(self.chat_args.max_length, model)
        self.counts: dict = {}
        if self.loss_method == COMPLETION_ONLY:  # SFTTrainer tokenizes when it is built
            self.as_messages = self.chat_args.trl_messages_format(self.conversations)
            self.dataset = conversation_records(self.conversations) if self.as_messages else prompt_completion_records(
                self.conversations, self.form, tokenizer
            )
            self.too_long = longer_than(self.dataset, tokenizer, self.max_length, self.as_messages)
            return
        self.dataset, self.counts = encode_for_trainer(
            self.conversations, self.loss_method, self.form, tokenizer, self.max_length
        )
        if len(self.dataset) == 0:
            raise UserError(f"--max_length {self.max_length} leaves no conversation with an answer token to learn.")
        self.target_logits = self.chat_args.target_logits_only and supports_target_logits(model)
        self.counts["loss_computation"] = "logits at targets only" if self.target_logits else "full logits"

    def plan(self) -> dict[str, object]:
        answers = sum(turn.role == ASSISTANT for turns in self.conversations for turn in turns)
        return {
            "data": f"{self.origin}: {len(self.conversations)} conversations, {answers} answers"
            + (f"; {self.dedupe_note}" if self.dedupe_note else ""),
            "format": f"{self.form.human_tag.strip()!r} / {self.form.assistant_tag.strip()!r}"
            + (", bos after each assistant tag" if self.form.bos_after_assistant_tag else "")
            + ", eos closes each answer",
            "max length": (f"{self.max_length} tokens{self.length_note}" if self.max_length else "none (no truncation)")
            + (f"; {self.too_long} conversation(s) longer: TRL cuts their end" if COMPLETION_ONLY == self.loss_method
               else f"; {self.counts['truncated']} conversation(s) cut, {self.counts['dropped']} dropped without an "
               f"answer token"),  # fmt: skip
            **({"base": source} if (source := describe_model_source(self.model_args.model_name_or_path)) else {}),
            "held-out": self._heldout_for_plan(),
        }

    def _heldout_for_plan(self) -> str:
        question = self.chat_args.heldout_question
        if not question:
            return "none"
        return question if len(question) <= 100 else f"{question[:99]}… ({len(question)} characters)"

    def build_trainer(self, model, tokenizer):
        if self.loss_method == COMPLETION_ONLY:
            from trl import SFTTrainer

            args = sft_config_from(self.training_args, self.max_length, self.as_messages)
            trainer = SFTTrainer(model=model, args=args, train_dataset=self.dataset, processing_class=tokenizer)
            if len(trainer.train_dataset) == 0:  # TRL drops the examples that truncation left without a target
                raise UserError(f"--max_length {self.max_length} leaves no conversation with an answer token to learn.")
            self.counts = trl_counts(trainer.train_dataset, len(self.conversations), self.as_messages)
        else:
            trainer = (TargetLossTrainer if self.target_logits else Trainer)(
                model=model,
                args=self.training_args,
                train_dataset=self.dataset,
                processing_class=tokenizer,
                data_collator=padding_collator(tokenizer),
            )
        self.tracker = None
        if self.chat_args.answers_every_epoch:
            questions = training_questions(self.conversations, self.chat_args.report_examples)
            self.tracker = AnswerTracker(questions, self.form, self.chat_args.max_new_tokens)
            trainer.add_callback(self.tracker)
        return trainer

    def evaluate(self, trainer, train_result, results: dict) -> dict:
        tracker = self.tracker
        losses = [entry for entry in trainer.state.log_history if "loss" in entry]
        row = {
            "method": self.loss_method,
            **results,  # the skeleton's: train_runtime_seconds, train_cpu_seconds, train_loss, trainable
            # Included in train_runtime_seconds, as every callback's time is in every method's.
            "answer_tracking_seconds": round(tracker.seconds, 2) if tracker else 0.0,
            **self.counts,
            "examples": len(trainer.train_dataset),
            "final_train_loss": losses[-1]["loss"] if losses else None,
            "epochs": self.training_args.num_train_epochs,
            "first_epoch_all_answers_exact": tracker.first_epoch_all_exact() if tracker else None,
            "exact_answers_per_epoch": tracker.exact_per_epoch if tracker else None,
        }
        row["trainable_parameters"], row["total_parameters"] = count_parameters(trainer.model)
        self.history = [{"epoch": entry["epoch"], "step": entry["step"], "train_loss": entry["loss"]} for entry in losses]
        return {**row, **answer_questions(trainer.model, trainer.processing_class, self.chat_args, self.conversations)}

    def write_results(self, trainer, results: dict, config: dict) -> None:
        if self.writes_report:
            title = f"{self.model_args.model_name_or_path}: causal LM fine-tuning, 1 method(s)"
            histories = {self.loss_method: self.history}
            write_chat_results(Path(self.training_args.output_dir), [results], histories, len(self.conversations), config,
                               title)  # fmt: skip

    def headline(self, results: dict) -> dict[str, str]:
        return chat_headline(results)

    def report_path(self) -> Path | None:
        return Path(self.training_args.output_dir) / COMPARISON_REPORT if self.writes_report else None

    def card(self, trainer, results: dict) -> str:
        return chat_card(self.model_args.model_name_or_path, self.origin, results, results["trainable"], trainer.args)


def compare(model_args, chat_args, run_args, training_args, lora_args, demo) -> list[dict]:
    """Every loss method from the same start, each into its own subfolder (a series, as --seeds
    is), then one comparison table."""
    folder = Path(training_args.output_dir)
    whole = ChatMethod(model_args, chat_args, run_args, training_args, lora_args, LOSS_METHODS[0], demo)
    methods = [
        ChatMethod(model_args, chat_args, run_args, training_args_as(TrainingArguments, training_args,
                   output_dir=str(folder / name)), lora_args, name, demo, writes_report=False)
        for name in LOSS_METHODS
    ]  # fmt: skip
    with series_folder(whole, "chat --compare", list(LOSS_METHODS)) as config:
        rows = []
        for number, method in enumerate(methods, 1):
            method.series = folder
            logger.info(f"=== method {number} of {len(methods)}: {method.loss_method}, into "
                        f"{method.training_args.output_dir} ===\n")  # fmt: skip
            rows.append(run(method))
        if training_args.process_index == 0:
            title = f"{model_args.model_name_or_path}: causal LM fine-tuning, {len(rows)} method(s)"
            histories = {method.loss_method: method.history for method in methods}
            write_chat_results(folder, rows, histories, len(methods[0].conversations), config, title)
            print(f"=== comparison of the {len(rows)} methods (report: {folder / COMPARISON_REPORT}) ===\n\n"
                  f"{comparison_table(rows)}\n", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None, defaults: dict | None = None, demo: list[Conversation] | None = None) -> list[dict]:
    model_args, chat_args, run_args, training_args, lora_args = parse_arguments(ARGUMENTS, argv, defaults, __doc__)
    names = chat_args.methods()
    if len(names) > 1:
        if training_args.push_to_hub:
            raise UserError("--push_to_hub publishes one model, and --compare trains three; push a single --method.")
        if run_args.seeds:
            raise UserError("--seeds with --compare: train each --method with --seeds into its own folder, then "
                            "compare the folders with hf-finetune compare.")
        return compare(model_args, chat_args, run_args, training_args, lora_args, demo)
    return [run(ChatMethod(model_args, chat_args, run_args, training_args, lora_args, names[0], demo))]


if __name__ == "__main__":
    run_cli(main)
