"""Answer questions with a model trained by recipes/spanish_chat.py (greedy generation):

    python -m hf_finetune.chat_answer outputs/spanish_chat 'How do you say "day" in Spanish?'
    python -m hf_finetune.chat_answer outputs/spanish_chat/masked --file questions.txt   # after --compare

The prompt is written by the chat template saved with the run's tokenizer, so it is the text
form the model was trained on. Prints one answer per line (JSON lines with --json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .errors import UserError, run_cli
from .modeling import load_tokenizer
from .predict import read_texts
from .saved_runs import load_causal_lm_run, require_saved_run


@torch.inference_mode()
def answer(run_dir: str | Path, questions: list[str], max_new_tokens: int = 32) -> list[str]:
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
    batch = tokenizer.pad({"input_ids": prompts}, padding=True, padding_side="left", return_tensors="pt")
    output = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hf_finetune.chat_answer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="the output folder of a finished run (a method's subfolder after --compare)")
    parser.add_argument("questions", nargs="*", help="questions ('-' or none: read standard input)")
    parser.add_argument("--file", help="a UTF-8 file with one question per line")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)

    questions = read_texts(args.questions, args.file)
    for question, reply in zip(questions, answer(args.run_dir, questions, args.max_new_tokens)):
        print(json.dumps({"question": question, "answer": reply}, ensure_ascii=False) if args.json else reply)


if __name__ == "__main__":
    run_cli(main)
