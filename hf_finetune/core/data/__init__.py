"""Data: --dataset to a DatasetDict (sources, download), splits, the leakage check, tokenization
once into a cache, and padding batches."""
