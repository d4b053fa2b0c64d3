"""The head method: a causal LM whose LM head is swapped for a class head read at the last real
token (recipes/spam.py). train.py tells its story."""
