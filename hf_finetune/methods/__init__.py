"""One package per method; each holds only what is particular to it, and its train.py subclasses
core.run.method.Method and tells the method's story. classify/ holds the two classifier methods
with what they share; text/ what the text-generating methods share. See docs/architecture.md."""
