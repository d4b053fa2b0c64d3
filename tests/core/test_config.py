"""Flags: recipe defaults < --config YAML < command line; every TrainingArguments flag works."""

from __future__ import annotations

import pytest

from hf_finetune.core.config_file import config_snapshot
from hf_finetune.core.errors import UserError
from hf_finetune.core.parsing import parse_arguments
from hf_finetune.methods.classify.head.train import ARGUMENTS as CLASSIFICATION_ARGUMENTS


def parse(argv, defaults=None):
    return parse_arguments(CLASSIFICATION_ARGUMENTS, argv, defaults)


def test_yaml_values_are_typed_like_the_command_line_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "learning_rate: 5e-5\nnum_train_epochs: 2\ntrainable: head\nbalance: true\n"
        "report_to: [none]\noutput_dir: from-yaml\n",
        encoding="utf-8",
    )
    model, data, _, run, training, *_ = parse([f"--config={config}", "--num_train_epochs", "7"],
                                          defaults={"num_train_epochs": 5, "trainable": "all"})  # fmt: skip
    assert training.learning_rate == 5e-5  # PyYAML reads "5e-5" as a string; it must still be a float
    assert training.num_train_epochs == 7
    assert model.trainable == "head"
    assert data.balance is True
    assert training.output_dir == "from-yaml"


def test_an_empty_config_file_changes_nothing(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("", encoding="utf-8")
    assert parse(["--config", str(config)])[1].dataset == "sms_spam"


def test_recipe_defaults_apply_when_nothing_overrides_them():
    model, data, _, _, training, *_ = parse(["--output_dir", "x"], defaults={"dataset": "sms_spam", "weight_decay": 0.1})
    assert data.dataset == "sms_spam" and training.weight_decay == 0.1


@pytest.mark.parametrize(
    "content, message",
    [
        ("learning_rat: 1e-3\n", "unknown key 'learning_rat'"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: [\n", "is not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        parse(["--config", str(config)])


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="--config: file .*nope.yaml does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")])


def test_snapshot_round_trips_and_keeps_secrets_out(tmp_path):
    import yaml

    parsed = parse(["--output_dir", str(tmp_path / "o"), "--learning_rate", "0.002", "--hub_token", "hf_secret"])
    snapshot = config_snapshot(parsed[0], parsed[1], parsed[4])
    assert snapshot["learning_rate"] == 0.002 and "hub_token" not in snapshot
    assert "hf_secret" not in yaml.safe_dump(snapshot)
    file = tmp_path / "again.yaml"
    file.write_text(yaml.safe_dump(snapshot), encoding="utf-8")
    again = parse(["--config", str(file)])
    assert again[4].learning_rate == 0.002 and again[0].model_name_or_path == parsed[0].model_name_or_path


def test_config_flag_without_a_file():
    with pytest.raises(UserError, match="--config needs a file name"):
        parse(["--output_dir", "x", "--config"])


def test_yaml_values_take_the_type_of_their_flag_and_null_keeps_the_default(tmp_path):
    config = tmp_path / "typed.yaml"
    config.write_text("num_train_epochs: 15\ndataset: 123\nmax_length: null\n", encoding="utf-8")
    _, data, _, _, training, *_ = parse(["--config", str(config)], defaults={"max_length": 64})
    assert training.num_train_epochs == 15.0 and isinstance(training.num_train_epochs, float)
    assert data.dataset == "123"
    assert data.max_length == 64


def test_a_list_for_a_one_value_flag_is_refused(tmp_path):
    config = tmp_path / "list.yaml"
    config.write_text("lora_target_modules: [c_attn, c_proj]\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"list.yaml, key 'lora_target_modules': a list .*takes one value"):
        parse(["--config", str(config)])
