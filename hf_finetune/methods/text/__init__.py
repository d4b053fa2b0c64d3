"""What the text-generating methods share (instruction and preference tuning): the Alpaca prompt
(prompt.py), batched greedy responses (responses.py), ROUGE-L (rouge.py) and the optional LLM
judge (judge.py). Neither method imports the other."""

# Here, not in responses.py (torch): the methods' argument dataclasses, which --help reads, use it.
DEFAULT_MAX_NEW_TOKENS = 256
