"""`python recipes/spanish_chat.py` (or `accelerate launch recipes/spanish_chat.py`) is
`hf-finetune chat`: Bloom learns to say words in Spanish, three ways. The story, the defaults and
the demo conversations are in hf_finetune/recipes/spanish_chat.py; `--help` tells them."""

from hf_finetune.core.errors import run_cli
from hf_finetune.recipes.spanish_chat import DEFAULTS, DEMO, WORDS, main

__all__ = ["DEFAULTS", "DEMO", "WORDS", "main"]

if __name__ == "__main__":
    run_cli(main)
