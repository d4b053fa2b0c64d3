"""What a run says on the console: its plan and summary (always printed), and its messages, through
Python's `logging` as in every Hugging Face tool.

The package's logger `hf_finetune` writes info to stdout and warnings and errors to stderr, as the
plain message. A training run sets its level from `--log_level` (`--log_level_replica` on the
other processes), as Trainer does for transformers' logger: `--log_level warning` keeps only the
plan, the summary and the warnings; `passive` (the default) keeps our messages at info on the
main process and warnings on the others. A handler added to `logging.getLogger("hf_finetune")`
(a file, say) receives every message.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hf_finetune.core.errors import UserError

if TYPE_CHECKING:  # imports torch: not for --help
    from transformers import TrainingArguments

logger = logging.getLogger("hf_finetune")


class ConsoleHandler(logging.Handler):
    """Info to stdout, warnings and errors to stderr: the streams of the moment (a test's capture,
    a redirected stream), not those of the import."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except BrokenPipeError:  # nobody reads this stream any more: nothing to say there
            pass
        except Exception:  # noqa: BLE001 - logging must never end a run
            self.handleError(record)


if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
    logger.addHandler(ConsoleHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not twice, when an application configures the root logger

# What a run keeps off the console but writes to its run.log: Trainer's raw log dicts, a generated
# text in full. The console shows it with --log_level debug.
run_log = logging.getLogger("hf_finetune.run_log")
run_log.setLevel(logging.DEBUG)
run_log.propagate = False

RUN_LOG = "run.log"
# The libraries whose log messages (and Python's warnings: py.warnings) a run writes to its run.log
# instead of the console, unless --log_level is info or debug.
LIBRARY_LOGGERS = ("transformers", "datasets", "accelerate", "peft", "trl", "py.warnings")


def set_log_level(args: TrainingArguments) -> None:
    """This process's level from --log_level / --log_level_replica; 'passive' keeps info on the
    main process and the replica level (warning by default) on the others."""
    from transformers.training_args import trainer_log_levels

    level = trainer_log_levels[args.log_level if args.should_log else args.log_level_replica]
    if level == -1:  # passive
        level = logging.INFO if args.should_log else logging.WARNING
    logger.setLevel(level)


# Whether this process shows live bars (set by the run, as its training bar: none with --disable_tqdm
# and none on the processes other than the main one).
_bars = {"shown": True}


def show_bars(shown: bool) -> None:
    _bars["shown"] = shown


def progress_bar(total: int, description: str, unit: str = "it", batches: int | None = None):
    """A live bar on stderr (tqdm, as Trainer's) for a phase of `total` units done in `batches`
    steps (default: one a unit): it shows the speed and the time left, and leaves no trace when
    closed (a line or the next phase follows). None shows when bars are off or for a single step."""
    from tqdm.auto import tqdm

    steps = total if batches is None else batches
    return tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True,
                disable=not _bars["shown"] or steps < 2)  # fmt: skip


def print_block(title: str, lines: dict[str, object]) -> None:
    """`title:` and one aligned `key  value` line each: the plan and the summary."""
    width = max(len(key) for key in lines)
    print(f"{title}:")
    for key, value in lines.items():
        print(f"  {key.ljust(width)}  {value}")
    print(flush=True)


# A terminal's control sequences: colours and cursor moves (CSI: ESC [ ... letter; transformers'
# coloured warnings, tqdm's cursor-up), window titles and links (OSC: ESC ] ... BEL or ESC \), and
# the two-character ones (ESC and one character).
TERMINAL_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain_text(message: str) -> str:
    """`message` as plain text for a file: no control sequences, and of a line a bar redrew with
    carriage returns, what a terminal would show last."""
    lines = []
    for line in TERMINAL_CONTROL.sub("", message).split("\n"):
        drawn = [part for part in line.split("\r") if part.strip()]
        lines.append(drawn[-1] if drawn else "")
    return "\n".join(lines)


class RunLogHandler(logging.FileHandler):
    """OUTPUT_DIR/run.log, appended to, as plain text; the messages before `start()` wait in memory,
    so that a run refused before its plan leaves no file behind (nothing written for a refused run)."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        self.setLevel(logging.DEBUG)
        self.waiting: list[logging.LogRecord] | None = []

    def format(self, record: logging.LogRecord) -> str:
        return plain_text(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        if self.waiting is not None:
            self.waiting.append(record)
        else:
            super().emit(record)

    def start(self) -> None:
        """From now on, write (the waiting messages first)."""
        waiting, self.waiting = self.waiting or [], None
        for record in waiting:
            super().emit(record)


@contextmanager
def libraries_off_the_console(quiet: bool) -> Iterator[None]:
    """While `quiet`: the libraries' log messages, Python's warnings and their own bars (transformers'
    "Loading weights", "Writing model shards"; datasets' "Generating train split", "Filter", a map's,
    each left on screen) leave the console; a handler added to the libraries' loggers inside
    (run.log's) still receives the messages."""
    if not quiet:
        yield
        return
    import datasets
    from transformers.utils import logging as transformers_logging

    libraries = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    removed = [(library, handler) for library in libraries for handler in list(library.handlers)]
    for library, handler in removed:
        library.removeHandler(handler)
    silent = logging.NullHandler()  # not Python's last resort (stderr) for a logger left without handlers
    for library in libraries:
        library.addHandler(silent)
    bars = transformers_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.captureWarnings(True)  # Python's warnings then go to py.warnings
    try:
        yield
    finally:
        logging.captureWarnings(False)
        if bars[0]:
            transformers_logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()
        for library in libraries:
            library.removeHandler(silent)
        for library, handler in removed:
            library.addHandler(handler)


@contextmanager
def messages_in_run_log(args: TrainingArguments) -> Iterator[RunLogHandler | None]:
    """Inside, on the main process: the package's messages, `run_log`'s, the libraries' log messages
    and Python's warnings are also written to OUTPUT_DIR/run.log (from the handler's start(): the
    run's plan), and the libraries' messages, their own bars and the warnings leave the console,
    unless --log_level is info or debug (which show them there as before; debug also shows
    run_log's). On the other processes only the main one talks to the console: the libraries'
    messages, bars and warnings are silenced (the main process's run.log has the same ones); the
    package's own warnings stay (--log_level_replica)."""
    if args.process_index != 0:
        # another machine's main process keeps its console
        with libraries_off_the_console(quiet=not args.should_log):
            yield None
        return
    handler = RunLogHandler(Path(args.output_dir) / RUN_LOG)
    libraries = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    console = next(item for item in logger.handlers if isinstance(item, ConsoleHandler))
    shown_raw = args.log_level == "debug"
    with libraries_off_the_console(quiet=args.log_level not in ("debug", "info")):
        if shown_raw:
            run_log.addHandler(console)
        for target in (logger, run_log, *libraries):
            target.addHandler(handler)
        try:
            yield handler
        except BaseException as error:
            if not isinstance(error, UserError):
                handler.start()  # a crash or a signal before the run was under way: its messages are kept
            raise
        finally:
            for target in (logger, run_log, *libraries):
                target.removeHandler(handler)
            if shown_raw:
                run_log.removeHandler(console)
            handler.close()
