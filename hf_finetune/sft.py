"""`python -m hf_finetune.sft`: the text-classification command (label-token by default, or the
class head with --method head), under the name the project started with; see classify.py."""

from hf_finetune.classify import DEFAULTS, main
from hf_finetune.core.errors import run_cli

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
