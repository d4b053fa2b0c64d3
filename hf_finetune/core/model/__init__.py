"""The model: loading (a Hub id, a folder or a finished run), what trains (--trainable, LoRA),
precision and device, the frozen-layer cache, the Trainer subclasses and callbacks, and
batched greedy generation."""
