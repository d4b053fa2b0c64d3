"""Classify texts with a finished run:

    hf-finetune predict outputs/spam "WINNER! Claim your prize now" "See you at 6?"
    hf-finetune predict outputs/spam --file messages.txt     # one text per line
    cat messages.txt | hf-finetune predict outputs/spam      # or from stdin

Prints one line per text: label, its probability, the text (tab-separated), or JSON lines
with --json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

from hf_finetune.core.errors import UserError, run_cli
from hf_finetune.core.parsing import ToolParser
from hf_finetune.core.report.files import FINISHED_MARKER
from hf_finetune.core.run.ownership import CONFIG, series_kind

# torch and transformers are imported where they are used: `predict --help` needs neither.

Predictor = Callable[[list[str]], list[tuple[str, float]]]


# What each kind of run folder holds, and the tool that uses it.
RUN_KINDS = {
    "head": ("a classifier (head method)", "python -m hf_finetune.predict"),
    "label_token": ("a label-token classifier", "python -m hf_finetune.predict"),
    "instruction": ("a text generator (instruction method)", "python -m hf_finetune.generate"),
    "chat": ("a chat model (chat method)", "python -m hf_finetune.chat_answer"),
    "reward": ("a reward model (reward method)", "hf-finetune score"),
}


def run_kind(run_dir: Path) -> str:
    """Which method trained the run in `run_dir` (a key of RUN_KINDS), read from its files; a
    checkpoint's from what it recorded of its run (RunIdentity) and its run folder."""
    from hf_finetune.core.model.saved_runs import architectures, has_chat_template, is_causal_lm_run
    from hf_finetune.core.run.checkpoints import TRAINER_STATE
    from hf_finetune.methods.classify.label_token.predict import LABEL_TOKEN_FILE
    from hf_finetune.methods.reward.saved import is_reward_run

    if (run_dir / LABEL_TOKEN_FILE).is_file():
        return "label_token"
    if (run_dir / TRAINER_STATE).is_file() and (
        (run_dir.parent / LABEL_TOKEN_FILE).is_file() or saved_method(run_dir).startswith("label-token")
    ):  # a checkpoint of a label-token run: its label words are in the run folder once the run has finished
        if (run_dir.parent / LABEL_TOKEN_FILE).is_file():
            return "label_token"
        raise UserError(f"{run_dir} is a checkpoint of a label-token run that has not finished: its label words are "
                        f"saved when the run ends ({LABEL_TOKEN_FILE}); finish it with --resume_from_checkpoint auto, "
                        f"then predict with its --output_dir.")  # fmt: skip
    if is_causal_lm_run(run_dir):
        return "chat" if has_chat_template(run_dir) else "instruction"
    found = architectures(run_dir)
    if any(name.endswith("ForSequenceClassification") for name in found):
        return "reward" if is_reward_run(run_dir) else "head"
    raise UserError(f"{run_dir} holds a {', '.join(found) or 'model'}, which none of the tools can use.")


def saved_method(checkpoint: Path) -> str:
    """The method a checkpoint's run recorded in its trainer_state.json ("" when it recorded none)."""
    from hf_finetune.core.run.checkpoints import TRAINER_STATE
    from hf_finetune.core.run.training import RunIdentity

    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
        identity = state["stateful_callbacks"][RunIdentity.__name__]["args"]["identity"]
        return str(identity["method"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def is_trained_run(folder: Path) -> bool:
    """Whether a run wrote `folder` (its flags, its results, or a checkpoint's trainer state; or it is
    one run of a series, such as a method's folder of chat --compare), not only a model."""
    from hf_finetune.core.run.checkpoints import TRAINER_STATE

    return any((folder / name).is_file() for name in (CONFIG, FINISHED_MARKER, TRAINER_STATE)) or \
        series_kind(folder.parent) is not None  # fmt: skip


def require_run_kind(run_dir: str | Path, kinds: tuple[str, ...], tool: str) -> tuple[Path, str]:
    """The run folder and its kind, or one sentence naming the tool that fits it."""
    from hf_finetune.core.model.saved_runs import architectures, require_saved_run

    if not str(run_dir).strip():  # Path("") is the current folder
        raise UserError("the run folder is empty; pass the --output_dir of a finished run.")
    run_dir = require_saved_run(run_dir)
    kind = run_kind(run_dir)
    if kind not in kinds:
        what, right_tool = RUN_KINDS[kind]
        if not is_trained_run(run_dir):  # a model written by tiny or copied from the Hub: no method trained it
            wanted = " or ".join(RUN_KINDS[name][0] for name in kinds)
            model = ", ".join(architectures(run_dir)) if (run_dir / "config.json").is_file() else "LoRA adapter"
            raise UserError(f"{run_dir} holds a model ({model}) that no run of hf-finetune trained (it has no "
                            f"{CONFIG} nor {FINISHED_MARKER}), not {wanted}; {tool} needs the --output_dir of such "
                            f"a finished run: train one with --model_name_or_path {run_dir}.")  # fmt: skip
        raise UserError(f"{run_dir} holds {what}, which {tool} cannot use; use {right_tool} {run_dir}.")
    return run_dir, kind


def load_predictor(run_dir: str | Path) -> Predictor:
    """Pick the predictor that matches how the run was trained."""
    from hf_finetune.methods.classify.head.predict import head_predictor
    from hf_finetune.methods.classify.label_token.predict import LABEL_TOKEN_FILE, label_token_predictor

    run_dir, kind = require_run_kind(run_dir, ("head", "label_token"), "python -m hf_finetune.predict")
    if kind == "label_token":  # a checkpoint's label words are in its run folder
        return label_token_predictor(run_dir, run_dir if (run_dir / LABEL_TOKEN_FILE).is_file() else run_dir.parent)
    return head_predictor(run_dir)


def read_texts(texts: list[str], file: str | None, what: str = "text to classify") -> list[str]:
    if file and texts:
        raise UserError(f"--file {file} and {len(texts)} text(s) on the command line: give the texts one way, not both.")
    if file:
        path = Path(file)
        if not path.exists():
            raise UserError(f"--file: {file} does not exist.")
        if path.is_dir():
            raise UserError(f"--file: {file} is a folder; pass a text file with one text per line.")
        try:  # a file or anything that reads as one (/dev/null, a named pipe)
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise UserError(f"--file: {file} is not UTF-8 (byte {error.start}).") from None
        except OSError as error:
            raise UserError(f"--file: {file} cannot be read ({error.strerror}).") from None
    elif texts and texts != ["-"]:
        lines = texts
    else:
        if sys.stdin.isatty() and texts != ["-"]:
            raise UserError("give texts as arguments, with --file, or on standard input.")
        stream = getattr(sys.stdin, "buffer", None)  # the bytes, decoded here: Python's own decoding hides bad ones
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise UserError(f"standard input is not UTF-8 (byte {error.start}); convert it to UTF-8 first.") from None
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise UserError(f"there is no non-empty {what}.")
    return lines


def check_text_arguments(argv: list[str], texts: list[str]) -> None:
    """Texts given as arguments are UTF-8 (Python keeps bytes that are not as lone surrogates), each
    named by its place on the command line, wherever the flags stand."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"argument {argv.index(text) + 1} is not UTF-8 text (a text to classify that holds bytes "
                            f"the terminal could not decode); write it in UTF-8.") from None  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser("python -m hf_finetune.predict", __doc__)
    parser.add_argument("run_dir", help="the output folder of a finished run")
    parser.add_argument("texts", nargs="*", help="texts to classify ('-' or none: read standard input)")
    parser.add_argument("--file", metavar="PATH", help="a UTF-8 file with one text per line")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    argv = sys.argv[1:] if argv is None else [str(token) for token in argv]
    args = parser.parse_intermixed_args(argv)  # texts before or after the flags (`RUN --json TEXT`)
    check_text_arguments(argv, args.texts)

    texts = read_texts(args.texts, args.file)
    predictor = load_predictor(args.run_dir)
    for text, (label, probability) in zip(texts, predictor(texts)):
        if args.json:
            print(json.dumps({"text": text, "label": label, "probability": round(probability, 6)}))
        else:
            print(f"{label}\t{probability:.4f}\t{text}")


if __name__ == "__main__":
    run_cli(main)
