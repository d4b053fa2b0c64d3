"""One clear sentence and a non-zero exit for every mistake a user can make.

Library code raises `UserError` with a message that names the file, row, column or flag at
fault. Entry points run through `run_cli`, which prints that message without a traceback
(unless `--traceback` is on the command line or HF_FINETUNE_TRACEBACK=1) and exits with status 2.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool its reader stopped reading


class UserError(Exception):
    """A problem with the user's input, flags or environment, explained in one sentence."""


class Interrupted(BaseException):
    """A signal that ends a command where nothing is saved: one sentence and `exit_code`. A
    BaseException, as KeyboardInterrupt is, so that no `except Exception` on its way (a data loader
    that names a file it could not read) turns it into another error."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


# "--flag": the --config file that set it, for the command being run (core/parsing.py fills it).
_flags_from_config_file: dict[str, str] = {}


def remember_flags_from_config_file(flags: dict[str, str]) -> None:
    _flags_from_config_file.clear()
    _flags_from_config_file.update(flags)


def naming_the_config_file(message: str) -> str:
    """`message`, and where the flags it names were set when the command line did not set them: a
    refusal of --label_words that came from --config names that file."""
    named = [flag for flag in dict.fromkeys(re.findall(r"--\w+", message)) if flag in _flags_from_config_file]
    if not named or "set in --config" in message:
        return message
    files = ", ".join(dict.fromkeys(_flags_from_config_file[flag] for flag in named))
    return f"{message.rstrip('.')} ({' and '.join(named)} set in --config {files})."


def terminated_before_the_run(signum, frame):
    raise Interrupted("interrupted by SIGTERM; the command did not finish: run it again.", exit_code=143)


@contextmanager
def sigterm_says_so() -> Iterator[None]:
    """SIGTERM in a command's first seconds (its imports, its checks), before a run installs its own
    handling (core/run/lock.py), ends it with one sentence and status 143, not silently."""
    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, terminated_before_the_run)
    except ValueError:  # not the main thread: signals are not ours to handle
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def traceback_requested(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--traceback" in argv or os.environ.get("HF_FINETUNE_TRACEBACK") == "1"


def run_cli(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Call `main(argv)` and turn a `UserError` into `error: ...` on stderr and exit code 2 (or the
    error's own `exit_code`); a reader that stops reading ends it quietly with 141."""
    remember_flags_from_config_file({})
    try:
        with sigterm_says_so():
            main(argv)
    except UserError as error:
        if traceback_requested(argv):
            raise
        print(f"error: {naming_the_config_file(str(error))}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", EXIT_USER_ERROR))
    except Interrupted as error:
        if traceback_requested(argv):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The program reading our output stopped (`| head`): end quietly, as command-line tools do.
        # Python would flush stdout again at exit and complain: point it at /dev/null first.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # no real file behind sys.stdout (a test's capture)
            pass
        sys.exit(EXIT_BROKEN_PIPE)
