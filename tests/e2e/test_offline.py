"""Offline, the first failed lookup ends the run: one sentence naming both ways out (local data and a
local model folder), no retries, no traceback, also under `accelerate launch`.

"Unreachable" is made real, not mocked: HF_ENDPOINT and the proxies point at a port where nothing
listens, so every request is refused at once, as on a machine without network (before the fix,
huggingface_hub retried each file for about 23 s and the data download retried each mirror).
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest
from conftest import PROJECT, run_command

from hf_finetune.core.errors import UserError
from hf_finetune.core.model.loading import load_causal_lm_weights, load_classifier, load_tokenizer

CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there
NO_NETWORK = dict(
    HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_ENDPOINT=CLOSED_PORT,
    http_proxy=CLOSED_PORT, https_proxy=CLOSED_PORT, HTTP_PROXY=CLOSED_PORT, HTTPS_PROXY=CLOSED_PORT,
    no_proxy="", NO_PROXY="",
)  # fmt: skip
ONE_PROCESS = "accelerate_configs/one_process.yaml"

# The recipe as `python recipes/spam.py ARGS` runs it, timed from after the heavy imports: what is
# left is the lookup that fails, which must not wait (a retried Hub file alone sleeps 23 s).
TIMED_RECIPE = """
import runpy, time
import datasets, torch, transformers, hf_finetune.methods.classify.head.train
start = time.monotonic()
try:
    runpy.run_path("recipes/spam.py", run_name="__main__")
finally:
    print(f"seconds after imports: {time.monotonic() - start:.1f}")
"""


def run_spam_recipe(*args: str, **env: str) -> tuple[int, float, list[str]]:
    """(exit status, seconds after imports, stderr lines) of the spam recipe with its default model."""
    result = run_command([sys.executable, "-c", TIMED_RECIPE, *args], timeout=300, **env)
    seconds = float(result.stdout.rsplit("seconds after imports:", 1)[1])
    return result.returncode, seconds, result.stderr.strip().splitlines()


def assert_one_sentence_with_both_ways_out(line: str) -> None:
    assert line.startswith("error: ")
    assert "without network access, train on local copies" in line
    assert "--dataset FILE_OR_FOLDER" in line and "--model_name_or_path MODEL_FOLDER" in line
    assert "python -m hf_finetune.tiny" in line


def test_no_network_default_data_and_model_end_at_the_first_lookup(tmp_path):
    # An empty download cache: the registered data (a URL, looked up first) is what fails.
    status, seconds, stderr = run_spam_recipe(
        "--output_dir", str(tmp_path / "run"), HF_FINETUNE_CACHE=str(tmp_path / "cache"), **NO_NETWORK
    )
    assert status == 2
    assert len(stderr) == 1, stderr  # no "Retrying in Ns" lines, no traceback
    assert stderr[0].startswith("error: --dataset: could not download sms_spam:") and "cannot be reached" in stderr[0]
    assert_one_sentence_with_both_ways_out(stderr[0])
    assert seconds < 10, f"{seconds} s after imports"
    assert not (tmp_path / "run").exists()


def test_hub_offline_mode_is_one_fast_sentence(sms_zip, tmp_path):
    status, seconds, stderr = run_spam_recipe(
        "--dataset", str(sms_zip), "--output_dir", str(tmp_path / "run"), HF_HUB_OFFLINE="1"
    )
    assert status == 2
    assert len(stderr) == 1, stderr
    assert stderr[0].startswith("error: --model_name_or_path: could not load the tokenizer 'gpt2': offline mode is on")
    assert_one_sentence_with_both_ways_out(stderr[0])
    assert seconds < 10, f"{seconds} s after imports"


def test_under_accelerate_launch_the_sentence_is_all_the_user_sees(sms_zip, tmp_path):
    # The documented single-process launch: a config (no warning about guessed values) and -q
    # (no CalledProcessError traceback of accelerate's own).
    result = run_command(
        ["accelerate", "launch", "-q", "--config_file", ONE_PROCESS, "recipes/spam.py",
         "--dataset", str(sms_zip), "--output_dir", str(tmp_path / "run")],
        timeout=300, **NO_NETWORK,
    )  # fmt: skip
    stderr = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert stderr[-1].startswith("error: --model_name_or_path: could not load the tokenizer 'gpt2': ")
    assert f"{CLOSED_PORT} cannot be reached" in stderr[-1]
    assert_one_sentence_with_both_ways_out(stderr[-1])
    assert "Traceback" not in result.stderr and "were not passed" not in result.stderr
    assert "Retrying" not in result.stderr


@pytest.fixture
def hub_unreachable_with_a_cache(tiny_gpt2, tmp_path, monkeypatch):
    """A Hub name that is in the local Hugging Face cache while the Hub itself refuses connections."""
    from huggingface_hub import constants

    from hf_finetune.core.data.download import hub_unreachable

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-gpt2"
    shutil.copytree(tiny_gpt2, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", CLOSED_PORT + "/{repo_id}/resolve/{revision}/{filename}")
    hub_unreachable.cache_clear()
    yield "someone/tiny-gpt2"
    hub_unreachable.cache_clear()


def test_a_cached_hub_model_still_loads_when_the_hub_is_unreachable(hub_unreachable_with_a_cache):
    from hf_finetune.core.data.download import hub_unreachable

    assert hub_unreachable().startswith(f"{CLOSED_PORT} cannot be reached (")
    started = time.monotonic()
    tokenizer = load_tokenizer(hub_unreachable_with_a_cache)
    model = load_causal_lm_weights(hub_unreachable_with_a_cache)
    classifier = load_classifier(hub_unreachable_with_a_cache, ["ham", "spam"], tokenizer)
    # Each file the cache lacks (adapter_config.json, looked up for every model) costs 23 s of retries.
    assert time.monotonic() - started < 10
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert classifier.config.num_labels == 2


def test_the_documented_config_is_in_the_troubleshooting_page():
    page = (PROJECT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    assert f"accelerate launch -q --config_file {ONE_PROCESS} recipes/spam.py" in page
    assert (PROJECT / ONE_PROCESS).is_file()


def test_a_missing_model_folder_is_named_not_blamed_on_the_network(tmp_path):
    with pytest.raises(UserError) as error:
        load_tokenizer(str(tmp_path / "no-model"))
    message = str(error.value)
    assert message == f"--model_name_or_path: could not load the tokenizer '{tmp_path / 'no-model'}': there is no such folder; check the path."
