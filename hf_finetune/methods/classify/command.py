"""The classify command: one text/label dataset, either classifier method (`--method label-token`,
the default, or `head`); the classify recipe (recipes/classify.py) gives its defaults."""

from __future__ import annotations

from hf_finetune.core.errors import UserError
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.run.skeleton import run
from hf_finetune.methods.classify.arguments import CLASSIFY_ARGUMENTS
from hf_finetune.methods.classify.head.train import HeadMethod
from hf_finetune.methods.classify.label_token.train import LabelTokenMethod

ARGUMENTS = CLASSIFY_ARGUMENTS


def main(argv: list[str] | None = None, defaults: dict | None = None) -> dict:
    (model_args, data_args, choice, label_token_args, run_args, training_args, lora_args, calibration_args,
     final_args) = parse_arguments(ARGUMENTS, argv, defaults, __doc__)  # fmt: skip
    if choice.method == "head":
        for flag, value in (("--label_words", label_token_args.label_words), ("--separator", label_token_args.separator)):
            if value is not None:
                raise UserError(
                    f"{flag}: label words are written by --method label-token only; drop {flag} for --method head."
                )
        method = HeadMethod(model_args, data_args, run_args, training_args, lora_args, calibration_args, final_args)
    else:
        method = LabelTokenMethod(
            model_args, data_args, label_token_args, run_args, training_args, lora_args, calibration_args, final_args
        )
    method.options += (choice,)  # config.yaml says which method, so that it reruns as the same one
    return run(method)
