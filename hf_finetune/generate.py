"""Answer instructions with an instruction-tuned run:

    hf-finetune generate outputs/instruction --instruction "Name the capital of France."
    hf-finetune generate outputs/instruction --instruction "Rewrite in passive voice." \\
        --input "The chef cooks the meal."

Generation is greedy, stops at the end-of-text token, and prints only the response (the text
after the prompt's response header), as the instruction method does for its test split
(methods/instruction/generate.py).
"""

from __future__ import annotations

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser
from hf_finetune.core.report.console import logger
from hf_finetune.methods.text import DEFAULT_MAX_NEW_TOKENS
from hf_finetune.predict import require_run_kind


def note_answer_limit(model, tokenizer, instruction: str, input: str, max_new_tokens: int) -> None:
    """Say on stderr when the model's context, not --max_new_tokens, is what can end the answer."""
    from hf_finetune.core.model.generation import prompt_room
    from hf_finetune.core.model.loading import position_limit
    from hf_finetune.methods.text.prompt import prompt_ids

    limit = position_limit(model.config)
    if limit is None:
        return
    request, header = prompt_ids(tokenizer, instruction, input)
    prompt = min(len(request) + len(header), prompt_room(limit, max_new_tokens))
    if prompt + max_new_tokens > limit:
        logger.warning(f"note: the model reads at most {limit} positions and the prompt takes {prompt}, so the answer "
                       f"is cut at {limit - prompt} tokens, fewer than --max_new_tokens {max_new_tokens}.")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser("python -m hf_finetune.generate", __doc__)
    parser.add_argument("run_dir", help="the output folder of a finished instruction-tuning run")
    parser.add_argument("--instruction", required=True, help="what the model should do")
    parser.add_argument("--input", default="", help="optional input the instruction refers to")
    parser.add_argument("--max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS, help="longest response in tokens")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if not args.instruction.strip():
        raise UserError("--instruction is empty.")
    if args.max_new_tokens < 1:
        raise UserError(f"--max_new_tokens must be at least 1 (got {args.max_new_tokens}).")
    from hf_finetune.methods.instruction.generate import load_generator  # torch: not for --help
    from hf_finetune.methods.text.responses import generate_responses

    run_dir, _ = require_run_kind(args.run_dir, ("instruction",), "python -m hf_finetune.generate")
    model, tokenizer = load_generator(run_dir)
    note_answer_limit(model, tokenizer, args.instruction, args.input, args.max_new_tokens)
    [response] = generate_responses(model, tokenizer, [{"instruction": args.instruction, "input": args.input}],
                                    max_new_tokens=args.max_new_tokens)
    print(response)


if __name__ == "__main__":
    run_cli(main)
