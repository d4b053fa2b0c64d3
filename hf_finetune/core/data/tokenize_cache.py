"""Tokenize once: every split encoded by a method is kept in a content-keyed cache; the model's context length."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import datasets
import tokenizers
import transformers
from datasets.fingerprint import Hasher

from hf_finetune.core.data.download import default_cache_dir
from hf_finetune.core.model.loading import position_limit


@lru_cache(maxsize=1)
def package_source_hash() -> str:
    """A hash of this package's code: any change to how texts are encoded invalidates the cache."""
    package = Path(__file__).resolve().parents[2]
    return Hasher.hash([path.read_bytes() for path in sorted(package.rglob("*.py"))])


def map_once(splits: datasets.DatasetDict, function, **map_kwargs) -> datasets.DatasetDict:
    """`splits.map(function, **map_kwargs)`, each split's result kept in the tokenization cache.

    Call it under `main_process_first`: the main process tokenizes and writes one Arrow file
    per split, the other processes (and later runs on the same data) read it back. A file is
    named by the split's content fingerprint and a hash of everything that shapes the result:
    the function with what it captures (tokenizer, lengths, label words), this package's code,
    the map arguments and the tokenizer libraries' versions. The cache
    lives in $HF_FINETUNE_CACHE/tokenized (default ~/.cache/hf_finetune); delete it freely.
    """
    try:
        key = Hasher.hash(
            [function, package_source_hash(), sorted(map_kwargs.items()), transformers.__version__, tokenizers.__version__]
        )
    except Exception:  # something captured cannot be hashed: tokenize without the cache
        return splits.map(function, **map_kwargs)
    folder = default_cache_dir() / "tokenized"
    folder.mkdir(parents=True, exist_ok=True)
    # The key names the result; handing it to `map` as the new fingerprint spares datasets hashing the
    # function (and the tokenizer it captures: about 30 ms a time) once more for every split.
    return datasets.DatasetDict({
        split: data.map(function, cache_file_name=str(folder / f"{data._fingerprint}-{key}.arrow"),
                        new_fingerprint=Hasher.hash([data._fingerprint, key]), **map_kwargs)
        for split, data in splits.items()
    })  # fmt: skip


def context_length(tokenizer, model_config) -> int:
    """The longest input the model takes (tokenizers often report a huge sentinel instead)."""
    limits = [position_limit(model_config), tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None]
    known = [limit for limit in limits if limit]
    return min(known) if known else 2048


def fitted_length(max_length: int | None, tokenizer, model_config) -> tuple[int, str]:
    """`--max_length` within the model's context (a longer input cannot run), and a note for the plan
    when it was lowered; no --max_length means the context."""
    limit = context_length(tokenizer, model_config)
    if max_length is not None and max_length > limit:
        return limit, f" (the model's context: --max_length {max_length} is above it)"
    return max_length or limit, ""
