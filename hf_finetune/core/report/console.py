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
import sys
from typing import TYPE_CHECKING

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


def set_log_level(args: TrainingArguments) -> None:
    """This process's level from --log_level / --log_level_replica; 'passive' keeps info on the
    main process and the replica level (warning by default) on the others."""
    from transformers.training_args import trainer_log_levels

    level = trainer_log_levels[args.log_level if args.should_log else args.log_level_replica]
    if level == -1:  # passive
        level = logging.INFO if args.should_log else logging.WARNING
    logger.setLevel(level)


def print_block(title: str, lines: dict[str, object]) -> None:
    """`title:` and one aligned `key  value` line each: the plan and the summary."""
    width = max(len(key) for key in lines)
    print(f"{title}:")
    for key, value in lines.items():
        print(f"  {key.ljust(width)}  {value}")
    print(flush=True)
