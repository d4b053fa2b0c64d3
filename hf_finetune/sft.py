"""`python -m hf_finetune.sft` is `hf-finetune classify` (label token by default, or the class head
with --method head), under the name the project started with; see hf_finetune/recipes/classify.py."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.classify import DEFAULTS, main

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
