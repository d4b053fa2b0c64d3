"""One package per method; each holds only what is particular to it, and its train.py subclasses
core.run.Method and tells the method's story. See docs/architecture.md."""
