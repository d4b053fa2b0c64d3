"""Files of the run folder, written atomically: every file is written to a temporary name and renamed, so a crash leaves the old file or the
new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FINISHED_MARKER = "all_results.json"


def _new_file_mode() -> int:
    """The mode a plain `open()` gives a new file (0644 under the usual umask 022), which the model
    files get; tempfile.mkstemp makes its files 0600, readable by their owner only. Read once, at
    import: the umask can only be read by setting it, which must not race with other threads."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


def mkstemp_like_open(path: Path, suffix: str) -> tuple[int, str]:
    """A temporary file beside `path`, to be renamed onto it, with the permissions of a plain new file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(handle, NEW_FILE_MODE)
    return handle, temporary


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = mkstemp_like_open(path, ".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
