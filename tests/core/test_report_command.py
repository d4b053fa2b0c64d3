"""report.md opens with the command as the user typed it, secrets removed (issue 24): what
parse_arguments records, and how a secret flag's value is hidden in either form."""

from __future__ import annotations

import pytest

from hf_finetune.core.help import command_help
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.core.report.command import command_markdown, typed_command, without_secrets
from hf_finetune.methods.classify.arguments import HEAD_ARGUMENTS


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["--hub_token", "hf_abc", "--seed", "1"], ["--hub_token", "***", "--seed", "1"]),
        (["--hub_token=hf_abc"], ["--hub_token=***"]),
        (["--hub-token", "hf_abc"], ["--hub-token", "***"]),
        (["--max_new_tokens", "5", "--special_tokens", "true"], ["--max_new_tokens", "5", "--special_tokens", "true"]),
        (["--hub_token"], ["--hub_token"]),  # no value to hide (argparse refuses it anyway)
    ],
)
def test_a_secret_flags_value_is_hidden_in_either_form(argv, shown):
    assert without_secrets(argv) == shown


def test_the_command_is_recorded_as_typed_with_the_token_hidden(tmp_path):
    argv = ["--output_dir", str(tmp_path / "my run"), "--hub_token", "hf_secret", "--learning_rate", "1e-3"]
    with command_help(prog="hf-finetune spam"):
        parse_arguments(HEAD_ARGUMENTS, argv)
    command = typed_command()
    assert command == f"hf-finetune spam --output_dir '{tmp_path / 'my run'}' --hub_token *** --learning_rate 1e-3"
    assert "hf_secret" not in command_markdown()[0] and command in command_markdown()[0]


def test_a_config_files_flags_stay_in_the_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 0.01\n")
    with command_help(prog="hf-finetune classify"):
        parse_arguments(HEAD_ARGUMENTS, ["--config", str(config), "--output_dir", "x"])
    assert typed_command() == f"hf-finetune classify --config {config} --output_dir x"
