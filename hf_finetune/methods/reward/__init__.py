"""The reward model: a sequence classifier with one score, trained on preference pairs."""
