"""The shared core: used by every method; nothing here imports a method.

    arguments.py  config_file.py  parsing.py  help.py  checks.py   the shared flags; --config in,
                                                  config.yaml out; parsing; the --help layout; value checks
    errors.py     one sentence and exit status 2 for a user's mistake
    data/         --dataset to a DatasetDict, splits, the leakage check, tokenization cache, padding
    model/        loading, what trains (--trainable, LoRA), device and precision, the frozen-layer
                  cache, Trainer subclasses and callbacks, batched generation, finished runs
    run/          the run skeleton (Method + run), preflight, the folder lock, training that
                  survives faults, checkpoints, the final save, series of runs (--seeds)
    report/       atomic files, curves, markdown tables, the console, the Hub push

See docs/architecture.md.
"""
