"""--push_to_hub against a local stand-in for the Hub (HF_ENDPOINT on 127.0.0.1).

The server implements the routes huggingface_hub's upload uses (create repo, validate the card's
YAML, preupload, commit; everything "regular", no LFS/Xet) and records what arrives.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import PROJECT, run_command

pytestmark = pytest.mark.slow
TOKEN = "hf_testSecretToken1234567890abcdef"


class FakeHub:
    def __init__(self, refuse_commits: bool = False):
        self.refuse_commits = refuse_commits
        self.created: list[dict] = []
        self.files: dict[str, bytes] = {}  # path in repo -> content of its last commit
        self.commits: list[str] = []
        self.authorizations: set[str] = set()
        self.unknown: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.authorizations.add(self.headers.get("Authorization", ""))
                if self.path == "/api/repos/create":
                    request = json.loads(body)
                    hub.created.append(request)
                    name = f"{request.get('organization') or 'user'}/{request['name']}" if "/" not in request["name"] else request["name"]
                    return self.reply(200, {"url": f"{hub.url}/{name}", "name": name})
                if self.path == "/api/validate-yaml":
                    return self.reply(200, {"errors": [], "warnings": []})
                if re.fullmatch(r"/api/models/[^/]+/[^/]+/preupload/[^/]+", self.path):
                    files = json.loads(body)["files"]
                    return self.reply(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]})  # fmt: skip
                commit = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/[^/]+", self.path)
                if commit:
                    if hub.refuse_commits:
                        return self.reply(403, {"error": "You don't have the rights to push to this repository."})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            hub.commits.append(item["value"]["summary"])
                        elif item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        else:
                            hub.unknown.append(f"commit item {item['key']}")
                    return self.reply(200, {"commitUrl": f"{hub.url}/{commit[1]}/commit/{'a' * 40}", "commitOid": "a" * 40,
                                            "pullRequestUrl": None})  # fmt: skip
                hub.unknown.append(f"POST {self.path}")
                return self.reply(404, {"error": "not implemented here"})

            def do_GET(self):
                hub.unknown.append(f"GET {self.path}")
                return self.reply(404, {"error": "not implemented here"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def push_run(tmp_path, tiny_gpt2, sms_zip, hub: FakeHub, *extra, **env):
    output = tmp_path / "spam-push"
    result = run_command(
        [
            sys.executable, str(PROJECT / "recipes" / "spam.py"),
            "--model_name_or_path", str(tiny_gpt2), "--dataset", str(sms_zip),
            "--trainable", "all", "--learning_rate", "1e-3", "--max_steps", "4", "--max_length", "48",
            "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2", "--train_eval_samples", "8",
            "--per_device_eval_batch_size", "64",
            "--output_dir", str(output),
            "--push_to_hub", "--hub_model_id", "alice/spam-tiny", "--hub_strategy", "every_save",
            *extra,
        ],
        cwd=tmp_path,
        timeout=600,
        HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", **env,
    )  # fmt: skip
    return output, result


def files_containing(folder: Path, secret: str) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, tiny_gpt2, sms_zip):
    hub = FakeHub()
    try:
        output, result = push_run(tmp_path_factory.mktemp("push"), tiny_gpt2, sms_zip, hub, HF_TOKEN=TOKEN)
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return hub, output, result


def test_model_tokenizer_and_card_arrive(pushed):
    hub, _, result = pushed
    assert hub.created and hub.created[0]["name"].endswith("spam-tiny")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
                 "all_results.json", "loss.png", "accuracy.png", "report.md"):
        assert name in hub.files, f"{name} was not pushed; got {sorted(hub.files)}"
    assert any(commit.startswith("Training in progress") for commit in hub.commits), "checkpoints push on save"
    assert hub.commits[-1] == "hf_finetune: final model, card and results"
    assert "Model save" not in hub.commits, "the final model is pushed once, after the results are written"
    assert "pushed" in result.stdout and "alice/spam-tiny" in result.stdout
    assert not hub.unknown, hub.unknown


def test_card_describes_the_run(pushed):
    hub, output, _ = pushed
    card = hub.files["README.md"].decode()
    assert card == (output / "README.md").read_text(), "the local card is the pushed card"
    assert card.startswith("---\n") and "pipeline_tag: text-classification" in card
    results = json.loads((output / "all_results.json").read_text())
    for heading in ("## Method", "## Base model", "## Data", "## Training command", "## Results",
                    "## Training curves", "## How to use", "## Intended use", "## Limits"):
        assert heading in card, heading
    assert "![loss](loss.png)" in card and "![accuracy](accuracy.png)" in card
    assert f"{results['test_accuracy']:.4f}" in card
    assert "--push_to_hub" in card and "recipes/spam.py" in card
    assert "train 1045, validation 149, test 300" in card


def test_token_is_used_but_written_nowhere(pushed):
    hub, output, result = pushed
    assert f"Bearer {TOKEN}" in hub.authorizations, "the token from HF_TOKEN was not used"
    assert not files_containing(output, TOKEN)
    assert [path for path, content in hub.files.items() if TOKEN.encode() in content] == []
    assert TOKEN not in result.stdout + result.stderr


def test_failed_push_keeps_the_local_run_and_says_so(tmp_path, tiny_gpt2, sms_zip):
    hub = FakeHub(refuse_commits=True)
    try:
        # The token on the command line this time: it must still end up in no file.
        output, result = push_run(tmp_path, tiny_gpt2, sms_zip, hub, "--hub_token", TOKEN)
    finally:
        hub.close()
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: --push_to_hub:") and "failed" in message and "intact" in message
    for name in ("all_results.json", "model.safetensors", "config.json", "tokenizer.json", "README.md", "report.md"):
        assert (output / name).is_file(), name
    assert f"Bearer {TOKEN}" in hub.authorizations
    assert not files_containing(output, TOKEN)
    assert TOKEN not in result.stdout + result.stderr


def test_push_needs_a_repository_name(tmp_path):
    result = run_command(
        [sys.executable, str(PROJECT / "recipes" / "spam.py"), "--push_to_hub", "--output_dir", str(tmp_path / "x")],
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--push_to_hub needs --hub_model_id" in result.stderr


def test_unreachable_hub_stops_before_any_training(tmp_path, tiny_gpt2, sms_zip):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = tmp_path / "never"
    result = run_command(
        [sys.executable, str(PROJECT / "recipes" / "spam.py"), "--model_name_or_path", str(tiny_gpt2),
         "--dataset", str(sms_zip), "--max_steps", "2", "--output_dir", str(output),
         "--push_to_hub", "--hub_model_id", "alice/x"],
        cwd=tmp_path, timeout=300,
        HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN,
    )  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: --push_to_hub: could not create or reach the repository alice/x")
    assert "nothing was trained" in message and TOKEN not in result.stderr
    assert not output.exists()


# --- the other methods -----------------------------------------------------------------------

CARD_HEADINGS = ("## Method", "## Base model", "## Data", "## Training command", "## Results", "## Training curves",
                 "## How to use", "## Intended use", "## Limits")  # fmt: skip


def method_commands(tiny_gpt2, sms_zip, instruction_json) -> dict[str, tuple[list[str], str, str]]:
    """method -> (command, a phrase its card must hold, the model file it pushes)."""
    quick = ["--model_name_or_path", str(tiny_gpt2), "--save_strategy", "no", "--report_to", "none",
             "--disable_tqdm", "true"]  # fmt: skip
    return {
        "label-token": (
            [sys.executable, "-m", "hf_finetune.sft", "--dataset", str(sms_zip), "--balance", "--max_steps", "2",
             "--max_length", "48", "--eval_strategy", "no", "--per_device_eval_batch_size", "64", *quick],
            "Label-token method", "model.safetensors",
        ),
        "instruction-lora": (
            [sys.executable, str(PROJECT / "recipes" / "instruction.py"), "--dataset", str(instruction_json),
             "--max_steps", "2", "--max_new_tokens", "2", "--generation_batch_size", "64", "--eval_strategy", "no",
             "--use_peft", "--lora_r", "4", *quick],
            "Instruction fine-tuning", "adapter_model.safetensors",
        ),
        "chat": (
            [sys.executable, str(PROJECT / "recipes" / "spanish_chat.py"), "--num_train_epochs", "1",
             "--answers_every_epoch", "false", *quick],
            "human turns carry no loss", "model.safetensors",
        ),
    }  # fmt: skip


@pytest.mark.parametrize("method", ["label-token", "instruction-lora", "chat"])
def test_every_method_pushes_its_model_tokenizer_and_card(tmp_path, tiny_gpt2, sms_zip, instruction_json, method):
    command, phrase, model_file = method_commands(tiny_gpt2, sms_zip, instruction_json)[method]
    output = tmp_path / method
    hub = FakeHub()
    try:
        result = run_command(
            [*command, "--output_dir", str(output), "--push_to_hub", "--hub_model_id", f"alice/{method}"],
            cwd=tmp_path, timeout=600,
            HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
            HF_TOKEN=TOKEN, OMP_NUM_THREADS="1",
        )  # fmt: skip
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.created and hub.created[0]["name"].endswith(method)
    for name in (model_file, "tokenizer.json", "tokenizer_config.json", "README.md", "all_results.json", "loss.png"):
        assert name in hub.files, f"{name} was not pushed; got {sorted(hub.files)}"
    assert hub.commits[-1] == "hf_finetune: final model, card and results" and not hub.unknown, hub.unknown
    card = hub.files["README.md"].decode()
    assert card == (output / "README.md").read_text()
    assert all(heading in card for heading in CARD_HEADINGS) and phrase in card
    assert f"alice/{method}" in card and "--push_to_hub" in card
    assert not files_containing(output, TOKEN) and TOKEN not in result.stdout + result.stderr
    assert [path for path, content in hub.files.items() if TOKEN.encode() in content] == []


def test_compare_cannot_push_three_models_to_one_repository(tmp_path):
    from hf_finetune.core.errors import UserError
    from hf_finetune.methods.chat.train import main

    with pytest.raises(UserError, match="--push_to_hub publishes one model, and --compare trains three"):
        main(["--compare", "--push_to_hub", "--hub_model_id", "alice/x", "--output_dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_the_card_command_is_the_one_a_user_typed_without_the_token():
    import hf_finetune.sft
    from hf_finetune.core.report.hub import command_line

    module_run = command_line([hf_finetune.sft.__file__, "--dataset", "rotten_tomatoes", "--hub_token", TOKEN])
    assert module_run == "python -m hf_finetune.sft --dataset rotten_tomatoes"
    assert command_line(["recipes/spam.py", f"--hub_token={TOKEN}", "--push_to_hub"]) == "python recipes/spam.py --push_to_hub"
