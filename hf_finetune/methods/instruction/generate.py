"""Greedy responses of an instruction-tuned model, during a run and from a saved run folder."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, TrainerCallback
from transformers.trainer_callback import ExportableState

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_tokenizer
from hf_finetune.core.model.saved_runs import is_causal_lm_run, load_causal_lm_run, require_saved_run
from hf_finetune.core.report.console import logger, run_log
from hf_finetune.methods.text.prompt import format_prompt
from hf_finetune.methods.text.responses import generate_responses


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


SHOWN_RESPONSE = 72  # characters of the validation response the console shows (run.log has it whole)


def shortened(text: str) -> str:
    """`text` on one line, cut to SHOWN_RESPONSE characters (a random model writes 64 repeated words)."""
    line = " ".join(text.split())
    return repr(line if len(line) <= SHOWN_RESPONSE else line[: SHOWN_RESPONSE - 1] + "…")


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
        run_log.debug(f"step {state.global_step}: validation response {response!r}")  # whole, in run.log
        logger.info(f"step {state.global_step}  validation response: {shortened(response)}")

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
