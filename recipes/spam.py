"""`python recipes/spam.py` (or `accelerate launch recipes/spam.py`) is `hf-finetune spam`: GPT-2
becomes an SMS spam classifier. The story and the defaults are in hf_finetune/recipes/spam.py;
`--help` tells them."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.spam import DEFAULTS, main

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
