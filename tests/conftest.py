"""Shared fixtures: the ../shared folder, a tiny random-init GPT-2, subprocess helpers.

Tests that need ../shared skip with a reason on a developer machine without it, and fail
when CI=true (CI always has it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HF_FINETUNE_SHARED", PROJECT.parent / "shared"))

# Nothing in the suite may reach for the Hub: fail fast instead of waiting on timeouts.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing (the ../shared folder beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def sms_zip() -> Path:
    return shared_path("data", "sms_spam_collection", "smsspamcollection.zip")


@pytest.fixture(scope="session")
def rt_folder() -> Path:
    return shared_path("data", "rt_polarity", "hf_split_derived")


@pytest.fixture(scope="session")
def instruction_json() -> Path:
    return shared_path("data", "llms_from_scratch_instruction", "instruction-data.json")


@pytest.fixture(scope="session")
def gpt2_tokenizer_dir() -> Path:
    return shared_path("models", "gpt2-tokenizer")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory, gpt2_tokenizer_dir) -> Path:
    """A 2-layer, 128-wide random-init GPT-2 with the real GPT-2 tokenizer."""
    from hf_finetune import tiny

    output = tmp_path_factory.mktemp("models") / "tiny-gpt2"
    tiny.main(["--tokenizer", str(gpt2_tokenizer_dir), "--output", str(output)])
    return output


def run_command(args: list[str], cwd: Path = PROJECT, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run a command as a user would, capturing its output as text."""
    full_env = {**os.environ, **env}
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def python_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "-m", module, *args], **kwargs)


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e/ trains or launches real runs: `pytest -m "not slow"` leaves it out."""
    e2e = Path(__file__).resolve().parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.slow)
