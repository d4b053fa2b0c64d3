"""`python recipes/instruction.py` (or `accelerate launch recipes/instruction.py`) is
`hf-finetune instruction`: GPT-2 learns to follow instructions. The story and the defaults are in
hf_finetune/recipes/instruction.py; `--help` tells them."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.instruction import DEFAULTS, main

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
