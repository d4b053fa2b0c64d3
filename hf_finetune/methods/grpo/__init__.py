"""GRPO: online reinforcement learning of an instruction-tuned model from rewards."""
