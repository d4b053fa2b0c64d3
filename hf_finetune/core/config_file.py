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
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hf_finetune.core.errors import UserError
from hf_finetune.core.report.command import is_secret
from hf_finetune.core.training_flags import is_training_arguments


def config_file_argv(
    argv: list[str], known: set[str], list_flags: frozenset[str] = frozenset()
) -> tuple[list[str], dict[str, str]]:
    """`argv` with its `--config FILE.yaml` replaced by the file's flags, placed first so that the
    command line wins (a flag typed there drops the file's value of it). Each value becomes
    command-line tokens, so it is typed and checked exactly as if typed there (a null keeps the
    default); a list is accepted only for the flags that take several values (`list_flags`). Also
    returns the flags only the file sets, each with the file's name, so that a message about one
    of them can say where it was set."""
    argv = [part for token in argv for part in (token.split("=", 1) if token.startswith("--config=") else [token])]
    if "--config" not in argv:
        return argv, {}
    index = argv.index("--config")
    if "--config" in argv[index + 1 :]:
        raise UserError("--config is given twice; pass one file (the command line overrides its values).")
    if index + 1 >= len(argv) or argv[index + 1].startswith("--"):
        raise UserError("--config needs a file name.")
    path = argv[index + 1]
    content = read_config_file(path)
    command_line = argv[:index] + argv[index + 2 :]
    typed = {token.split("=", 1)[0] for token in command_line if token.startswith("--")}
    tokens: list[str] = []
    for key, value in content.items():
        if key not in known:
            raise UserError(f"--config: {path} has an unknown key '{key}'.")
        if value is None or value == []:  # the flag's default
            continue
        values = value_tokens(path, key, value, key in list_flags)  # a list where one value goes: refused anyway
        if f"--{key}" not in typed:  # the command line wins
            tokens += [f"--{key}", *values]
    from_file = {token: path for token in tokens if token.startswith("--")}
    return tokens + command_line, from_file


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error (safe_load keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                continue  # SafeLoader refuses what cannot be a key
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_config_file(path: str) -> dict:
    """The mapping in `path`, or one sentence saying why there is none."""
    file = Path(path)
    if not path:
        raise UserError("--config: the value is empty; give the YAML file (a run folder's config.yaml).")
    if file.exists() and not file.is_dir() and not file.is_file():
        raise UserError(f"--config: {path} is not a regular file (a device or a pipe); give a YAML file.")
    if file.is_dir():
        raise UserError(f"--config: {path} is a folder; pass the YAML file in it (a run folder's config.yaml).")
    if not file.is_file():
        raise UserError(f"--config: file {path} does not exist.")
    try:
        content = yaml.load(file.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as error:
        raise UserError(f"--config: {path} is not UTF-8 text (byte {error.start}).") from None
    except OSError as error:
        raise UserError(f"--config: {path} cannot be read ({error.strerror}).") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # counts lines from 0
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or error.__class__.__name__
        raise UserError(f"--config: {path}{where} is not valid YAML ({problem}).") from None
    if content is not None and not isinstance(content, dict):
        raise UserError(f"--config: {path} must be a mapping of flag names to values.")
    return content or {}


def value_tokens(path: str, key: str, value, takes_a_list: bool) -> list[str]:
    """A YAML value as the command-line tokens of flag `key`."""
    if isinstance(value, (list, tuple)) and key == "report_to" and len(value) == 1:
        value = value[0]  # TrainingArguments takes a list of trackers, the command line one of them
    if isinstance(value, (list, tuple)):
        if not takes_a_list:
            raise UserError(f"--config: {path}, key '{key}': a list ({value}), but --{key} takes one value; write "
                            f"one value.")  # fmt: skip
        if any(isinstance(item, (list, dict)) for item in value):
            raise UserError(f"--config: {path}, key '{key}': the list holds a list or mapping; write plain values.")
        return [str(item) for item in value]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


# Left out of config.yaml, so that the file trains the same run anywhere: where and how the command
# writes and reports (a reuse names its own --output_dir; resuming is exact, so it changes no
# result), the series a run is one of (a series' own config.yaml adds --seeds; a run's file trains
# that one run), and the values the machine decides (--use_cpu is the default where there is no
# accelerator; pinning only helps copies to one; the process's rank).
NOT_SNAPSHOT = frozenset({"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "traceback", "seeds",
                          "seeds_vary_split", "use_cpu", "dataloader_pin_memory", "local_rank", "given_flags"})  # fmt: skip


def config_snapshot(*arguments) -> dict:
    """A flat mapping of the run's flags, reusable with --config: every field of the argument
    dataclasses, TrainingArguments' whole included (a recipe's defaults differ from
    TrainingArguments', so a value equal to the latter's default is still a value in force), as
    the command line would give it back. Left out: secrets (tokens) and NOT_SNAPSHOT."""
    snapshot: dict[str, Any] = {}
    for item in arguments:
        values = item.to_dict() if is_training_arguments(type(item)) else asdict(item)
        for key, value in values.items():
            if key.startswith("_") or is_secret(key) or key in NOT_SNAPSHOT:
                continue
            snapshot[key] = snapshot_value(key, value)
    return snapshot


def with_training_defaults(config: dict) -> dict:
    """A config.yaml read back whole: the files written before every value was kept left out the
    TrainingArguments values equal to TrainingArguments' own defaults; they are filled in here."""
    return {**training_defaults(), **config}


@lru_cache(maxsize=1)
def training_defaults() -> dict:
    """TrainingArguments' defaults as config_snapshot writes them (built once: building resets accelerate's state)."""
    from transformers import TrainingArguments  # imports torch: not for --help

    return config_snapshot(TrainingArguments(output_dir="."))


def snapshot_value(key: str, value):
    """`value` as --config reads it back: what TrainingArguments turned into a list from one value
    (report_to none -> [], all -> every installed tracker; fsdp's words) becomes that value again."""
    if key == "report_to" and isinstance(value, list):
        return "none" if not value else value[0] if len(value) == 1 else "all"
    if key == "fsdp" and isinstance(value, list):
        return " ".join(map(str, value)) or None
    return value
