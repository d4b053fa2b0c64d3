"""hf_finetune: fine-tune causal language models with the Hugging Face stack.

Layers, top to bottom: sources -> preparation -> encoding -> modeling -> training -> results.
Entry points: recipes/*.py, `python -m hf_finetune.predict`, `python -m hf_finetune.tiny`.
"""

__version__ = "0.1.0"
