"""`python recipes/preference.py` (or `accelerate launch recipes/preference.py`) is
`hf-finetune preference`: the instruction-tuned GPT-2 learns to prefer polite answers (DPO). The
story and the defaults are in hf_finetune/recipes/preference.py; `--help` tells them."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.preference import DEFAULTS, main

__all__ = ["DEFAULTS", "main"]

if __name__ == "__main__":
    run_cli(main)
