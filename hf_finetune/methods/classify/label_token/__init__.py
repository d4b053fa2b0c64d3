"""The label-token method: the causal LM keeps its LM head and learns to write a label word after
the text (`python -m hf_finetune.sft`). train.py tells its story."""
