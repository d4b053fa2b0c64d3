"""`--config FILE.yaml` in, `config.yaml` out: a run's flags as a YAML mapping.

Precedence, lowest first: the recipe's defaults, `--config FILE.yaml` (a finished run's
config.yaml is such a file), the command line. The YAML file is turned into command-line tokens
rather than handed to TRL's `TrlParser`, which sets YAML values as untyped defaults (a null
replaces a default, `15` stays an int in a float field, `4` in a text field, a list lands in a
one-value field).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainingArguments

from hf_finetune.core.errors import UserError


def config_file_argv(argv: list[str], known: set[str]) -> tuple[list[str], dict[str, str]]:
    """`argv` with its `--config FILE.yaml` replaced by the file's flags, placed first so that the
    command line wins. Each value becomes command-line tokens, so it is typed and checked exactly
    as if typed there (a null keeps the default). Also returns the flags only the file sets, each
    with the file's name, so that a message about one of them can say where it was set."""
    argv = [part for token in argv for part in (token.split("=", 1) if token.startswith("--config=") else [token])]
    if "--config" not in argv:
        return argv, {}
    index = argv.index("--config")
    if index + 1 >= len(argv):
        raise UserError("--config needs a file name.")
    path = argv[index + 1]
    if not Path(path).is_file():
        raise UserError(f"--config: file {path} does not exist.")
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"--config: {path} is not UTF-8 text (byte {error.start}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # counts lines from 0
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or error.__class__.__name__
        raise UserError(f"--config: {path}{where} is not valid YAML ({problem}).") from None
    if content is not None and not isinstance(content, dict):
        raise UserError(f"--config: {path} must be a mapping of flag names to values.")
    tokens: list[str] = []
    for key, value in (content or {}).items():
        if key not in known:
            raise UserError(f"--config: {path} has an unknown key '{key}'.")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            tokens += [f"--{key}", *[str(item) for item in value]]
        elif isinstance(value, dict):
            tokens += [f"--{key}", json.dumps(value)]
        else:
            tokens += [f"--{key}", str(value)]
    command_line = argv[:index] + argv[index + 2 :]
    typed = {token.split("=", 1)[0] for token in command_line}
    from_file = {token: path for token in tokens if token.startswith("--") and token not in typed}
    return tokens + command_line, from_file


def _is_secret(key: str) -> bool:
    """hub_token and the like; not max_new_tokens or special_tokens."""
    return key == "token" or key.endswith("_token")


def config_snapshot(*arguments) -> dict:
    """A flat mapping of the run's flags, reusable with --config: every field of the project's
    argument dataclasses, and the TrainingArguments that differ from their defaults. Fields
    that hold secrets (tokens) are left out."""
    snapshot: dict[str, Any] = {}
    for item in arguments:
        if isinstance(item, TrainingArguments):
            reference = TrainingArguments(output_dir=item.output_dir).to_dict()
            values = {k: v for k, v in item.to_dict().items() if v != reference.get(k) and not k.startswith("_")}
        else:
            values = asdict(item)
        snapshot.update({k: v for k, v in values.items() if not _is_secret(k)})
    return snapshot
