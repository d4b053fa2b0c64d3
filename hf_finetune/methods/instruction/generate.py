"""Greedy responses of an instruction-tuned model, during a run and from a saved run folder."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, TrainerCallback

from hf_finetune.core.errors import UserError
from hf_finetune.core.generation import greedy_generate
from hf_finetune.core.modeling import load_tokenizer, position_limit
from hf_finetune.core.saved_runs import is_causal_lm_run, load_causal_lm_run, require_saved_run

from .encoding import prompt_ids
from .prompt import extract_response, format_prompt

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

    A prompt too long for the model's context loses the end of its request, never the response
    header; core.generation batches the prompts with left padding and stops each at end-of-text.
    """
    limit = position_limit(model.config)
    prompts = []
    for entry in entries:
        request, header = prompt_ids(tokenizer, entry["instruction"], entry.get("input") or "")
        if limit is not None and len(request) + len(header) >= limit:
            request = request[: max(1, limit - len(header) - 1)]  # keep room for at least one new token
        prompts.append(request + header)
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


class LogValidationResponse(TrainerCallback):
    """Generate the response to one fixed validation example before training and at every
    evaluation, as the book prints it each epoch."""

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
        print(f"[step {state.global_step}, epoch {epoch:.2f}] validation response: {response!r}", flush=True)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._sample(state, model)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if state.global_step > 0 and (not self.samples or self.samples[-1]["step"] != state.global_step):
            self._sample(state, model)
