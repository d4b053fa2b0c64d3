"""Answer questions with a model trained by recipes/spanish_chat.py (greedy generation):

    python -m hf_finetune.chat_answer outputs/spanish_chat 'How do you say "day" in Spanish?'
    python -m hf_finetune.chat_answer outputs/spanish_chat/masked --file questions.txt   # after --compare

The prompt is written by the chat template saved with the run's tokenizer, so it is the text
form the model was trained on. Prints one answer per line (JSON lines with --json).
"""

from __future__ import annotations

import argparse
import json

from .core.errors import run_cli
from .methods.chat.answers import answer_run
from .predict import read_texts


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
    for question, reply in zip(questions, answer_run(args.run_dir, questions, args.max_new_tokens)):
        print(json.dumps({"question": question, "answer": reply}, ensure_ascii=False) if args.json else reply)


if __name__ == "__main__":
    run_cli(main)
