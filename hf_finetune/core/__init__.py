"""The shared core: one module per concern, used by every method; nothing here imports a method.

Layers, top to bottom (data flows down, nothing flows back up):
    sources, download          --dataset -> a DatasetDict
    splits, classification_data  checked splits (seeded or file order), label maps
    tokenize_cache             map once, content-keyed cache; context length
    modeling, lora             model + tokenizer, freezing policy or LoRA
    collate, trainers, callbacks  padding by position; ordered eval, loss at targets; resume, preemption
    run                        the run skeleton every method goes through (+ preflight, training, saving)
    generation                 batched greedy generation with left padding
    reports, classification_report  atomic files, history, plots, tables, metrics
    hub                        push and the model-card frame
    errors, config, precision  one sentence + exit 2; flags and YAML; mixed precision
See docs/architecture.md.
"""
