"""Cached, checksum-verified downloads with retries and mirror fallback."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable

from .errors import UserError

ATTEMPTS_PER_URL = 3
TIMEOUT_SECONDS = 30


def default_cache_dir() -> Path:
    return Path(os.environ.get("HF_FINETUNE_CACHE", Path.home() / ".cache" / "hf_finetune"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_to(url: str, target: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "hf_finetune"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response, open(target, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


def fetch(
    name: str,
    urls: Iterable[str],
    accepted_sha256: Iterable[str],
    filename: str,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Return a verified local copy of `name`, downloading it into the cache when needed.

    The file is first written beside its final place and renamed only once its sha256 is one
    of `accepted_sha256`, so the cache never holds a partial or unverified file.
    """
    accepted = {digest.lower() for digest in accepted_sha256}
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / filename
    if final.exists() and sha256_of(final) in accepted:
        return final

    failures: list[str] = []
    for url in urls:
        for attempt in range(1, ATTEMPTS_PER_URL + 1):
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
            os.close(handle)
            temporary_path = Path(temporary)
            try:
                _download_to(url, temporary_path)
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                temporary_path.unlink(missing_ok=True)
                if isinstance(error, urllib.error.HTTPError) or attempt == ATTEMPTS_PER_URL:
                    failures.append(f"{url} ({getattr(error, 'reason', None) or error})")
                    break
                time.sleep(attempt)
                continue
            digest = sha256_of(temporary_path)
            if digest not in accepted:
                temporary_path.unlink()
                raise UserError(
                    f"the {name} download from {url} has sha256 {digest}, which is not the known checksum "
                    f"({', '.join(sorted(accepted))}); the file is corrupt or has changed, so it was discarded."
                )
            os.replace(temporary_path, final)
            return final
    raise UserError(
        f"could not download {name}: {'; '.join(failures)}. Without network access, pass a local copy "
        f"with --dataset PATH."
    )
