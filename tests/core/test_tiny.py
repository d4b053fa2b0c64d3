"""`python -m hf_finetune.tiny`: random-init models every `from_pretrained` loads."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from hf_finetune.core.errors import run_cli
from hf_finetune.tiny import main


def run_tiny(argv, capsys) -> tuple[int, str, str]:
    """`python -m hf_finetune.tiny ARGV` in process: (exit status, stdout, stderr)."""
    try:
        run_cli(main, argv)
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_gpt2_with_the_real_tokenizer_loads_everywhere(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    assert len(tokenizer) == 50257
    lm = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    assert (lm.config.n_layer, lm.config.n_embd) == (2, 128)
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2, num_labels=2)
    assert classifier.score.out_features == 2


def test_bloom_with_a_tokenizer_trained_from_text(tmp_path, sms_zip, capsys):
    import zipfile

    text = tmp_path / "sms.txt"
    text.write_bytes(zipfile.ZipFile(sms_zip).read("SMSSpamCollection"))
    output = tmp_path / "bloom"
    status, out, err = run_tiny(["--arch", "bloom", "--train_tokenizer_on", str(text), "--vocab_size", "500",
                                 "--output", str(output)], capsys)  # fmt: skip
    assert status == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["arch"] == "bloom" and summary["vocab"] == 500
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    model = AutoModelForCausalLM.from_pretrained(output)
    assert model.config.model_type == "bloom" and model.config.pad_token_id == tokenizer.pad_token_id


def test_existing_folder_is_kept(tiny_gpt2, gpt2_tokenizer_dir, capsys):
    before = sorted(path.name for path in tiny_gpt2.iterdir())
    status, _, err = run_tiny(["--tokenizer", str(gpt2_tokenizer_dir), "--output", str(tiny_gpt2)], capsys)
    assert status == 2 and "already exists" in err
    assert sorted(path.name for path in tiny_gpt2.iterdir()) == before


def test_unreachable_tokenizer_is_one_sentence(tmp_path, capsys):
    status, _, err = run_tiny(["--tokenizer", "nobody/nothing", "--output", str(tmp_path / "m")], capsys)
    assert status == 2
    assert err.strip().splitlines()[-1].startswith("error: --tokenizer: could not load the tokenizer")


@pytest.mark.slow
def test_the_module_runs_as_a_command(tmp_path, gpt2_tokenizer_dir):
    from conftest import python_module

    result = python_module("hf_finetune.tiny", "--tokenizer", str(gpt2_tokenizer_dir), "--output", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["layers"] == 2


@pytest.mark.parametrize(
    "output, words",
    [
        ("a_file", "--output: {tmp}/a_file is a file, not a folder; choose a folder path."),
        ("a_file/model", "--output: {tmp}/a_file, above {tmp}/a_file/model, is a file, not a folder"),
        ("", "--output: the value is empty; name the folder to write the model to."),
        ("   ", "--output: the value is empty"),
    ],
)
def test_an_output_that_is_no_folder_is_one_sentence_before_the_model_is_built(output, words, tmp_path, capsys,
                                                                                 monkeypatch):  # fmt: skip
    (tmp_path / "a_file").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_tiny(["--tokenizer", "no-tokenizer-loads", "--output",
                                 str(tmp_path / output) if output.strip() else output], capsys)  # fmt: skip
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: " + words.format(tmp=tmp_path)), err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]
    assert (tmp_path / "a_file").read_text() == "keep me"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--context", "100000000000"], "error: --context 100000000000 with --width 128 make about"),  # 51 TB
        (["--layers", "100000000"], "error: --layers 100000000 --width 128 make about"),  # 79 TB
    ],
)
def test_a_shape_too_large_for_memory_names_the_flag_that_makes_it(argv, words, tmp_path, capsys):
    status, out, err = run_tiny(["--tokenizer", "no-tokenizer-loads", "--output", str(tmp_path / "m"), *argv], capsys)
    assert status == 2 and err.startswith(words) and "of free memory" in err, err
    assert not (tmp_path / "m").exists()
