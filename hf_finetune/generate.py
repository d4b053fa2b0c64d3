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
from hf_finetune.methods.text import DEFAULT_MAX_NEW_TOKENS
from hf_finetune.predict import require_run_kind


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
    [response] = generate_responses(model, tokenizer, [{"instruction": args.instruction, "input": args.input}],
                                    max_new_tokens=args.max_new_tokens)
    print(response)


if __name__ == "__main__":
    run_cli(main)
