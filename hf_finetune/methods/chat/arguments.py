"""The chat method's own flags (with ModelArguments, RunArguments, TrainingArguments, LoraArguments),
and the SFTConfig its completion_only method trains with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from hf_finetune.core.arguments import LoraArguments, ModelArguments, RunArguments, training_args_as
from hf_finetune.core.errors import UserError
from hf_finetune.core.training_flags import CommonTrainingArguments

if TYPE_CHECKING:  # torch and datasets: not for --help
    from transformers import TrainingArguments

    from .conversations import ChatForm, Conversation

COMPLETION_FORMATS = ("auto", "prompt_completion", "messages")


@dataclass
class ChatArguments:
    help_section: ClassVar[str] = "chat method"
    rare_flags: ClassVar[frozenset[str]] = frozenset(  # --help-all lists them
        {"text_column", "dedupe", "human_tag", "assistant_tag", "special_tokens", "completion_format", "max_length",
         "target_logits_only", "answers_every_epoch"}
    )

    method: str = field(
        default="masked",
        metadata={"help": "copy_labels (the whole text), masked (answers only) or completion_only (TRL's)."},
    )
    compare: bool = field(default=False, metadata={"help": "Train all three methods, one comparison table."})
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Conversations (file, folder or Hub id): '### Human: ... ### Assistant: ...' text, "
            "prompt/completion or messages (default: the demo set)."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column of text-form conversations."})
    dedupe: bool = field(
        default=False,
        metadata={"help": "Drop exact and near duplicate conversations (and held-out copies)."},
    )
    human_tag: str = field(default="\n\n### Human:", metadata={"help": "Tag in front of each human turn."})
    assistant_tag: str = field(default="\n\n### Assistant:", metadata={"help": "Tag in front of each assistant turn."})
    special_tokens: bool = field(
        default=False,
        metadata={"help": "The tutorial's beginning-of-sequence token after each assistant tag."},
    )
    completion_format: str = field(
        default="auto",
        metadata={
            "help": "completion_only's data: prompt_completion, messages (a {% generation %} chat template) "
            "or auto (prompt_completion if each conversation is one exchange)."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Truncate conversations to this many tokens, keeping their start (default and most: the "
                  "model's limit); unanswered ones are dropped."},
    )
    target_logits_only: bool = field(
        default=True,
        metadata={
            "help": "copy_labels/masked: LM-head logits only where a label is learned (same loss, less compute)."
        },
    )
    heldout_question: str | None = field(default=None, metadata={"help": "A question not in the training data."})
    heldout_answer: str | None = field(default=None, metadata={"help": "Its expected answer."})
    max_new_tokens: int = field(default=16, metadata={"help": "Longest generated answer."})
    answers_every_epoch: bool = field(
        default=True,
        metadata={"help": "Answer the training questions at each epoch's end."},
    )
    report_examples: int = field(default=10, metadata={"help": "Training questions answered in the table."})
    cache_dir: str | None = field(default=None, metadata={"help": "Download cache (default: ~/.cache/hf_finetune)."})

    def form(self) -> ChatForm:
        from .conversations import ChatForm

        return ChatForm(human_tag=self.human_tag, assistant_tag=self.assistant_tag, bos_after_assistant_tag=self.special_tokens)

    def trl_messages_format(self, conversations: list[Conversation]) -> bool:
        """Whether completion_only hands TRL messages (else prompt-completion pairs)."""
        from .encoding import is_single_exchange

        single = all(is_single_exchange(turns) for turns in conversations)
        if self.completion_format == "prompt_completion" and not single:
            raise UserError(
                "--completion_format prompt_completion: some conversations have several answers or end with a "
                "human turn; use --completion_format messages (or auto)."
            )
        return self.completion_format == "messages" or (self.completion_format == "auto" and not single)

    def check(self) -> None:
        if self.max_length is not None and self.max_length < 1:
            raise UserError(f"--max_length must be at least 1 (got {self.max_length}).")
        if self.max_new_tokens < 1:
            raise UserError(f"--max_new_tokens must be at least 1 (got {self.max_new_tokens}).")
        if self.report_examples < 0:
            raise UserError(f"--report_examples must not be negative (got {self.report_examples}).")
        for name in ("human_tag", "assistant_tag"):
            if not getattr(self, name).strip():
                raise UserError(f"--{name} is empty; a conversation needs a tag in front of each turn.")
        if self.human_tag.strip() == self.assistant_tag.strip():
            raise UserError("--human_tag and --assistant_tag are the same; the turns could not be told apart.")
        if self.heldout_question is not None and not self.heldout_question.strip():
            raise UserError("--heldout_question is empty; ask a question or leave the flag out.")
        if self.heldout_answer is not None and self.heldout_question is None:
            raise UserError("--heldout_answer needs --heldout_question, the question it answers.")

    def methods(self) -> tuple[str, ...]:
        from .encoding import LOSS_METHODS

        self.check()
        if self.method not in LOSS_METHODS:
            raise UserError(f"--method: '{self.method}' is not one of {', '.join(LOSS_METHODS)}.")
        if self.completion_format not in COMPLETION_FORMATS:
            raise UserError(f"--completion_format: '{self.completion_format}' is not one of {', '.join(COMPLETION_FORMATS)}.")
        return LOSS_METHODS if self.compare else (self.method,)


def sft_config_from(args: TrainingArguments, max_length: int | None, messages: bool):
    """An SFTConfig with exactly the user's TrainingArguments: SFTConfig's own defaults
    (gradient checkpointing and bf16 on, lr 2e-5) would make the comparison unfair."""
    from trl import SFTConfig

    return training_args_as(
        SFTConfig,
        args,
        max_length=max_length,
        packing=False,  # Bloom ignores position_ids (ALiBi): packed sequences would see each other
        padding_free=False,
        completion_only_loss=None if messages else True,
        assistant_only_loss=messages,
        dataset_num_proc=None,
    )


# The dataclasses main() parses, in its order; CommonTrainingArguments: TrainingArguments once parsed.
ARGUMENTS = (ModelArguments, ChatArguments, RunArguments, CommonTrainingArguments, LoraArguments)
