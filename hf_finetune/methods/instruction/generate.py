"""Greedy responses of an instruction-tuned model, during a run and from a saved run folder."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, TrainerCallback
from transformers.trainer_callback import ExportableState

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.generation import greedy_generate, prompt_room
from hf_finetune.core.model.loading import load_tokenizer, position_limit
from hf_finetune.core.model.saved_runs import is_causal_lm_run, load_causal_lm_run, require_saved_run

from .encoding import prompt_ids
from .prompt import extract_response, format_prompt
from hf_finetune.core.report.console import logger

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 8


def generate_responses(
    model,
    tokenizer,
    entries: list[dict],
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[str]:
    """Greedy responses to `entries` (dicts with instruction and optional input), in order.

    The method's truncation rule, as in training: a prompt too long to leave room for
    `max_new_tokens` in the model's context loses the end of its request, never the response
    header (said on stderr); core.generation batches the prompts with left padding and stops
    each at end-of-text.
    """
    room = prompt_room(position_limit(model.config), max_new_tokens)
    prompts, cut = [], 0
    for entry in entries:
        request, header = prompt_ids(tokenizer, entry["instruction"], entry.get("input") or "")
        if room is not None and len(request) + len(header) > room:
            request = request[: max(1, room - len(header))]
            cut += 1
        prompts.append(request + header)
    if cut:
        logger.warning(f"note: {cut} prompt(s) longer than {room} tokens lost the end of their request, so that "
                       f"{max_new_tokens} new tokens fit the model's context.")  # fmt: skip
    answers = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    return [extract_response(answer) for answer in answers]


def load_generator(run_dir: str | Path):
    """(model, tokenizer) of a saved instruction-tuned run."""
    run_dir = require_saved_run(run_dir)
    if not is_causal_lm_run(run_dir):
        architectures = AutoConfig.from_pretrained(run_dir).architectures or []
        raise UserError(
            f"{run_dir} holds a {', '.join(architectures) or 'model'}, not a causal LM that can generate; "
            f"use python -m hf_finetune.predict for classifiers."
        )
    tokenizer = load_tokenizer(str(run_dir), padding_side="left")
    model = load_causal_lm_run(run_dir).eval()  # a full model or a LoRA adapter run
    return model, tokenizer


class LogValidationResponse(TrainerCallback, ExportableState):
    """Generate the response to one fixed validation example before training and at every
    evaluation, as the book prints it each epoch. The samples travel in each checkpoint's
    trainer_state.json, so a resumed run reports those taken before the interruption too."""

    def __init__(self, entry: dict, tokenizer, max_new_tokens: int):
        self.entry = entry
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.samples: list[dict] = []

    def _sample(self, state, model) -> None:
        if not state.is_world_process_zero:
            return
        [response] = generate_responses(model, self.tokenizer, [self.entry], max_new_tokens=self.max_new_tokens)
        epoch = round(float(state.epoch or 0), 4)
        self.samples.append({"step": state.global_step, "epoch": epoch, "prompt": format_prompt(
            self.entry["instruction"], self.entry["input"]), "response": response})
        logger.info(f"[step {state.global_step}, epoch {epoch:.2f}] validation response: {response!r}")

    def state(self) -> dict:
        return {"args": {}, "attributes": {"samples": self.samples}}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._sample(state, model)
        elif not self.samples:  # resumed: Trainer has loaded the checkpoint's state
            saved = state.stateful_callbacks.get(type(self).__name__) or {}
            self.samples = list(saved.get("attributes", {}).get("samples", []))

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if state.global_step > 0 and (not self.samples or self.samples[-1]["step"] != state.global_step):
            self._sample(state, model)
