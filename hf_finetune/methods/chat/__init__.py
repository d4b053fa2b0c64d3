"""The chat method: causal LM fine-tuning on conversations, three ways (copy-labels, masked, TRL
completion-only), compared with --compare (recipes/spanish_chat.py). train.py tells its story."""
