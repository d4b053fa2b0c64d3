"""Score answers to one prompt with a finished reward run (hf-finetune reward):

    hf-finetune score outputs/reward "Name the capital of France." "Paris." "I do not know."
    hf-finetune score outputs/reward "Rewrite in passive voice." "The meal is cooked by the chef." \\
        --input "The chef cooks the meal." --json

Each answer follows the prompt in the Alpaca format and ends with end-of-text, as the reward model
was trained. Prints one line per answer, in the order given: its score, then the answer
(tab-separated), or JSON lines with --json. Higher is better; scores compare answers to the same
prompt.
"""

from __future__ import annotations

import json

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser
from hf_finetune.predict import require_run_kind

# torch and transformers are imported where they are used: `score --help` needs neither.


def main(argv: list[str] | None = None) -> list[float]:
    parser = ToolParser("hf-finetune score", __doc__)
    parser.add_argument("run_dir", help="the output folder of a finished reward run")
    parser.add_argument("prompt", help="the instruction the answers reply to")
    parser.add_argument("answers", nargs="+", help="one or more answers to score")
    parser.add_argument("--input", default="", help="optional input the instruction refers to")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    args = parser.parse_args(argv)
    if not args.prompt.strip():
        raise UserError("the prompt is empty; give the instruction the answers reply to.")
    run_dir, _ = require_run_kind(args.run_dir, ("reward",), "hf-finetune score")
    from hf_finetune.methods.reward.saved import RewardScorer

    scores = RewardScorer(run_dir)(args.prompt, args.answers, args.input)
    for answer, score in zip(args.answers, scores):
        if args.json:
            print(json.dumps({"answer": answer, "score": round(score, 6)}))
        else:
            print(f"{score:.4f}\t{answer}")
    return scores


if __name__ == "__main__":
    run_cli(main)
