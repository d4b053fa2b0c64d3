"""The installed `hf-finetune` console script, `python -m hf_finetune`, and `accelerate launch -m
hf_finetune COMMAND`: what only a real process shows (the in-process help tests are in
tests/core/test_cli_help.py)."""

from __future__ import annotations

import shutil
import sys

from conftest import run_command


def test_the_installed_console_script_runs():
    script = shutil.which("hf-finetune")
    assert script, "no hf-finetune on PATH: run `pip install -e .` to install the console script"
    overview = run_command([script, "--help"])
    assert overview.returncode == 0 and "chat-answer" in overview.stdout, overview.stderr
    command = run_command([script, "tiny", "--help"], COLUMNS="100")
    assert command.returncode == 0 and command.stdout.startswith("usage: hf-finetune tiny"), command.stderr
    module = run_command([sys.executable, "-m", "hf_finetune", "spam", "--help"], COLUMNS="100")
    assert module.returncode == 0 and "(default: outputs/spam)" in " ".join(module.stdout.split()), module.stderr


def test_accelerate_launch_runs_a_command_as_a_module(tmp_path, gpt2_tokenizer_dir):
    output = tmp_path / "tiny-model"
    result = run_command(
        ["accelerate", "launch", "--num_processes", "1", "-m", "hf_finetune", "tiny",
         "--tokenizer", str(gpt2_tokenizer_dir), "--output", str(output)],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (output / "config.json").is_file() and '"output"' in result.stdout
