"""Cached, checksum-verified downloads with retries and mirror fallback; whether the Hub answers."""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

from hf_finetune.core.errors import UserError

ATTEMPTS_PER_URL = 3
TIMEOUT_SECONDS = 10  # per connection attempt and per read: an unanswered host costs 10 s, not minutes
SHARED = Path(__file__).resolve().parents[3].parent / "shared"  # the offline copies beside a checkout


def offline_way_out() -> str:
    """What a training run without network access can do instead: local data and a local model."""
    if (SHARED / "data").is_dir():
        shared = os.path.relpath(SHARED)
        data, tiny = f" (e.g. the copies in {shared}/data)", f"--tokenizer {shared}/models/gpt2-tokenizer"
    else:
        data, tiny = "", "--train_tokenizer_on TEXT_FILE"
    return (
        f"without network access, train on local copies: --dataset FILE_OR_FOLDER{data} and --model_name_or_path "
        f"MODEL_FOLDER, e.g. one written by `python -m hf_finetune.tiny {tiny} --output models/tiny-gpt2`"
    )


@functools.cache
def hub_unreachable() -> str | None:
    """Why this process cannot use the Hugging Face Hub, or None when the Hub answers.

    Asked once per process, before a Hub name loads: when a file is neither reachable nor cached,
    huggingface_hub retries it with backoff for about 23 s, and a model asks for several files.
    One HEAD through huggingface_hub's own client (its proxy and certificate settings), within its
    metadata timeout (HF_HUB_ETAG_TIMEOUT); any answer, even an error status, means reachable.
    """
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as error:  # DNS, refused, timeout, proxy, TLS: the client's own exception types
        detail = " ".join(str(error).split())[:120] or error.__class__.__name__
        return f"{constants.ENDPOINT} cannot be reached ({detail})"
    return None


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
    unreachable: list[str] = []  # hosts that never answered: no network, a wrong name, a firewall
    for url in urls:
        for attempt in range(1, ATTEMPTS_PER_URL + 1):
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
            os.close(handle)
            temporary_path = Path(temporary)
            try:
                _download_to(url, temporary_path)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                temporary_path.unlink(missing_ok=True)
                # urlopen raises a bare URLError only when no connection could be made: retrying
                # would only wait; a failure while reading (reset, timeout, cut short) is retried.
                no_answer = type(error) is urllib.error.URLError
                if no_answer:
                    unreachable.append(f"{urlparse(url).hostname} ({error.reason})")
                if no_answer or isinstance(error, urllib.error.HTTPError) or attempt == ATTEMPTS_PER_URL:
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
    if len(unreachable) == len(failures):
        raise UserError(
            f"--dataset: could not download {name}: {' and '.join(unreachable)} cannot be reached; {offline_way_out()}."
        )
    raise UserError(
        f"could not download {name}: {'; '.join(failures)}. Without network access, pass a local copy "
        f"with --dataset PATH."
    )
