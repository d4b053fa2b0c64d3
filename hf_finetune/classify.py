"""`python -m hf_finetune.classify` is `hf-finetune classify`: text classification by label token
(default) or class head. The story and the defaults are in hf_finetune/recipes/classify.py."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.classify import DEFAULTS, main

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
