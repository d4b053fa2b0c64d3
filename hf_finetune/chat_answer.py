"""Answer questions with a model trained by recipes/spanish_chat.py (greedy generation):

    hf-finetune chat-answer outputs/spanish_chat 'How do you say "day" in Spanish?'
    hf-finetune chat-answer outputs/spanish_chat/masked --file questions.txt   # after --compare

The prompt is written by the chat template saved with the run's tokenizer, so it is the text
form the model was trained on. Prints one answer per line (JSON lines with --json).
"""

from __future__ import annotations

import json

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser
from hf_finetune.predict import read_texts, require_run_kind


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser("python -m hf_finetune.chat_answer", __doc__)
    parser.add_argument("run_dir", help="the output folder of a finished run (a method's subfolder after --compare)")
    parser.add_argument("questions", nargs="*", help="questions ('-' or none: read standard input)")
    parser.add_argument("--file", metavar="PATH", help="a UTF-8 file with one question per line")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="longest answer in tokens")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)

    if args.max_new_tokens < 1:
        raise UserError(f"--max_new_tokens must be at least 1 (got {args.max_new_tokens}).")
    from hf_finetune.methods.chat.answers import answer_run  # torch: not for --help

    run_dir, _ = require_run_kind(args.run_dir, ("chat",), "python -m hf_finetune.chat_answer")
    questions = read_texts(args.questions, args.file, "question")
    for question, reply in zip(questions, answer_run(run_dir, questions, args.max_new_tokens)):
        print(json.dumps({"question": question, "answer": reply}, ensure_ascii=False) if args.json else reply)


if __name__ == "__main__":
    run_cli(main)
