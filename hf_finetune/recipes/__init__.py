"""The recipes: each file is one training command's story (its docstring, which --help shows), its
defaults and one call into its method. `hf-finetune spam|classify|instruction|chat|preference` runs
them, and so do `python recipes/NAME.py` and `accelerate launch recipes/NAME.py`: the checkout's
recipes/ folder is a link to this one."""
