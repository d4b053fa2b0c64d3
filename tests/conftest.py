"""Shared fixtures: the ../shared folder, a tiny random-init GPT-2, subprocess helpers.

Tests that need ../shared skip with a reason on a developer machine without it, and fail
when CI=true (CI always has it; .ci/run exports CI=true).
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
def preference_json() -> Path:
    return shared_path("data", "llms_from_scratch_instruction", "instruction-data-with-preference.json")


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


def subprocess_env(**env: str) -> dict[str, str]:
    """This environment for a child process that imports this checkout's hf_finetune, wherever (or
    whether) the package is installed: `python recipes/x.py` does not put the checkout on sys.path."""
    path = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **env}


def run_command(args: list[str], cwd: Path = PROJECT, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """Run a command as a user would, capturing its output as text."""
    return subprocess.run(args, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout, check=False)


def python_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_command([sys.executable, "-m", module, *args], **kwargs)


# Runs a module as `python -m` would, but at the moment named prints "PAUSED" and waits to be killed:
# "evaluate N" at the start of the Nth evaluation, "cache" as the frozen cache's build begins.
PAUSED_AT = """
import runpy, sys, time
moment, module = sys.argv.pop(1), sys.argv.pop(1)
def pause():
    print("PAUSED", flush=True)
    time.sleep(600)
if moment.startswith("evaluate"):
    from transformers import Trainer
    evaluate, calls = Trainer.evaluate, []
    def paused_evaluate(self, eval_dataset=None, *args, **kwargs):
        if eval_dataset is None:  # one evaluation (it calls evaluate again for each of its datasets)
            calls.append(1)
            if len(calls) == int(moment.split()[1]):
                pause()
        return evaluate(self, eval_dataset, *args, **kwargs)
    Trainer.evaluate = paused_evaluate
else:
    from hf_finetune.core.model.frozen_cache import FrozenCache
    build = FrozenCache.build
    def paused_build(self, *args, **kwargs):
        pause()
        return build(self, *args, **kwargs)
    FrozenCache.build = paused_build
sys.argv[0] = module
runpy.run_module(module, run_name="__main__")
"""


def start_paused(moment: str, module: str, argv: list[str], logs: Path, timeout: float = 300) -> subprocess.Popen:
    """`python -m module argv` as a user starts it (one thread), returned once it is paused at `moment`
    (see PAUSED_AT), for a signal to arrive exactly there; its output goes to logs/stdout.txt, stderr.txt."""
    import time

    env = subprocess_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(logs / "stdout.txt", "w") as stdout, open(logs / "stderr.txt", "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", PAUSED_AT, moment, module, *map(str, argv)], cwd=PROJECT,
                                   env=env, stdout=stdout, stderr=stderr)  # fmt: skip
    deadline = time.time() + timeout
    while "PAUSED" not in (logs / "stdout.txt").read_text():
        assert process.poll() is None, (logs / "stderr.txt").read_text()[-3000:]
        assert time.time() < deadline, "the run never reached the pause"
        time.sleep(0.05)
    return process


def sigterm_after_the_first_step(command: list[str], output: Path, logs: Path) -> Path:
    """Start the training run `command` (one thread, into `output`; --logging_steps 1 and
    --disable_tqdm true, so that step 1 prints a loss line), send SIGTERM once step 1 is done, check
    that it exits 143 with one sentence naming the checkpoint it saved and no model; return that checkpoint."""
    import signal
    import time

    stdout, stderr = logs / "stdout.txt", logs / "stderr.txt"
    with open(stdout, "w") as out, open(stderr, "w") as err:
        process = subprocess.Popen(command, cwd=PROJECT, stdout=out, stderr=err,
                                   env=subprocess_env(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))  # fmt: skip
    deadline = time.time() + 300
    while "  training loss " not in stdout.read_text():
        assert process.poll() is None, stderr.read_text()[-2000:]
        assert time.time() < deadline, "timed out waiting for the first step"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == 143, stderr.read_text()[-2000:]
    [checkpoint] = sorted(output.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))[-1:]
    [message] = [line for line in stderr.read_text().splitlines() if line.startswith("error:")]
    assert f"interrupted by SIGTERM at step {checkpoint.name.split('-')[1]}; checkpoint saved in {checkpoint}" in message
    assert "Traceback" not in stderr.read_text() and not (output / "model.safetensors").exists()
    return checkpoint


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e/ trains or launches real runs: `pytest -m "not slow"` leaves it out."""
    e2e = Path(__file__).resolve().parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def package_log_level():
    """A run sets the package logger's level from its --log_level; the next test starts at info."""
    import logging

    yield
    logging.getLogger("hf_finetune").setLevel(logging.INFO)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread in this process: two threads on two cores shared with other jobs stall on
    each other, tiny models need no more, and learning tests then give the same figures anywhere.
    Module-scoped, so that a module's own module-scoped runs (`pytestmark = usefixtures(...)`) get it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
