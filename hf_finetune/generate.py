"""Answer instructions with an instruction-tuned run:

    python -m hf_finetune.generate outputs/instruction --instruction "Name the capital of France."
    python -m hf_finetune.generate outputs/instruction --instruction "Rewrite in passive voice." \\
        --input "The chef cooks the meal."

Generation is greedy, stops at the end-of-text token, and prints only the response (the text
after the prompt's response header). The recipe uses the same functions for its test split,
batched with left padding.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoConfig

from .errors import UserError, run_cli
from .instruction_data import SECTION_HEADERS, RESPONSE_HEADER
from .instruction_encoding import prompt_ids
from .modeling import load_tokenizer
from .saved_runs import is_causal_lm_run, load_causal_lm_run, require_saved_run

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 8


def extract_response(generated: str) -> str:
    """The response in what the model wrote after the prompt.

    The prompt already ends with the response header, so normally the generation is the
    response itself. Odd generations are cleaned up: a response header the model repeats at
    the start is skipped, and the response ends where the model starts a new section
    (### Instruction:, ### Input: or ### Response:).
    """
    text = generated.strip()
    while text.startswith(RESPONSE_HEADER):
        text = text[len(RESPONSE_HEADER) :].strip()
    cut = min((text.find(header) for header in SECTION_HEADERS if header in text), default=len(text))
    return text[:cut].strip()


def _context_limit(model) -> int | None:
    config = model.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return None  # e.g. Bloom (ALiBi): no fixed limit


@torch.inference_mode()
def generate_responses(
    model,
    tokenizer,
    entries: list[dict],
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[str]:
    """Greedy responses to `entries` (dicts with instruction and optional input), in order.

    Prompts are sorted by length and batched with left padding, so every row's next token sits
    in the last column and little time goes to padding; each row stops at end-of-text.
    """
    if tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has no end-of-text token, so generation cannot stop.")
    limit = _context_limit(model)
    prompts = []
    for entry in entries:
        request, header = prompt_ids(tokenizer, entry["instruction"], entry.get("input") or "")
        if limit is not None and len(request) + len(header) >= limit:
            request = request[: max(1, limit - len(header) - 1)]  # keep room for at least one new token
        prompts.append(request + header)

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))
    responses: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        longest = max(len(prompts[row]) for row in rows)
        input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for position, row in enumerate(rows):
            ids = prompts[row]
            input_ids[position, longest - len(ids) :] = torch.as_tensor(ids)
            attention_mask[position, longest - len(ids) :] = 1
        new_tokens = max_new_tokens if limit is None else max(1, min(max_new_tokens, limit - longest))
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
        )
        for position, row in enumerate(rows):
            continuation = output[position, longest:].tolist()
            if tokenizer.eos_token_id in continuation:
                continuation = continuation[: continuation.index(tokenizer.eos_token_id)]
            responses[row] = extract_response(tokenizer.decode(continuation, skip_special_tokens=True))
    if was_training:
        model.train()
    return responses


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hf_finetune.generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="the output folder of a finished instruction-tuning run")
    parser.add_argument("--instruction", required=True, help="what the model should do")
    parser.add_argument("--input", default="", help="optional input the instruction refers to")
    parser.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if not args.instruction.strip():
        raise UserError("--instruction is empty.")
    if args.max_new_tokens < 1:
        raise UserError(f"--max_new_tokens must be at least 1 (got {args.max_new_tokens}).")
    model, tokenizer = load_generator(args.run_dir)
    [response] = generate_responses(model, tokenizer, [{"instruction": args.instruction, "input": args.input}],
                                    max_new_tokens=args.max_new_tokens)
    print(response)


if __name__ == "__main__":
    run_cli(main)
