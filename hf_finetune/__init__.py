"""hf_finetune: fine-tune causal language models with the Hugging Face stack.

core/     the shared layers and the run skeleton (nothing there imports a method)
methods/  one package per method: classify/ (head, label_token), instruction, chat, preference;
          text/ holds what instruction and preference tuning share
recipes/  one file per training command: its story, its defaults, one call
Commands: `hf-finetune COMMAND` (cli.py), or `python -m hf_finetune.classify|sft|predict|generate|
chat_answer|compare|tiny`. See docs/architecture.md.
"""

__version__ = "0.1.0"
