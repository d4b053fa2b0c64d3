"""The run: the skeleton every training run goes through (skeleton.py) and the steps it takes
that no method changes: preflight, the output folder's lock, training that survives faults,
checkpoints, the final save, and series of runs over several seeds."""
