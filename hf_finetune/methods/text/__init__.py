"""What the text-generating methods share (instruction and preference tuning): the Alpaca prompt
(prompt.py), batched greedy responses (responses.py), ROUGE-L (rouge.py) and the optional LLM
judge (judge.py). Neither method imports the other."""
