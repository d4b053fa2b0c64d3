"""hf_finetune: fine-tune causal language models with the Hugging Face stack.

core/     the shared layers and the run skeleton (nothing there imports a method)
methods/  one package per method: head, label_token, instruction, chat
Entry points: recipes/*.py, `python -m hf_finetune.classify|sft|predict|generate|chat_answer|tiny`.
See docs/architecture.md.
"""

__version__ = "0.1.0"
