"""The preference method: DPO (TRL's DPOTrainer) on chosen/rejected answer pairs after instruction
tuning, compared on the same test prompts before and after (recipes/preference.py). train.py tells
its story."""
