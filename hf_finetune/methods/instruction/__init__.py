"""The instruction method: Alpaca-style instruction tuning, scored by greedy test responses
(recipes/instruction.py). train.py tells its story."""
