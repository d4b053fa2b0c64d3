"""Response extraction, the generate CLI's errors, and the optional judge client."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from hf_finetune.core.errors import UserError
from hf_finetune.generate import main as generate_main
from hf_finetune.methods.text.judge import Judge, judge_responses, parse_score
from hf_finetune.methods.text.prompt import extract_response


@pytest.mark.parametrize(
    "generated, expected",
    [
        ("The meal is cooked by the chef every day.", "The meal is cooked by the chef every day."),
        ("  The meal is cooked.\n", "The meal is cooked."),  # no header at all: the text itself
        ("", ""),  # empty response
        ("\n\n   \n", ""),
        ("### Response:\nThe meal is cooked.", "The meal is cooked."),  # header repeated at the start
        ("### Response:\n### Response:\nParis", "Paris"),
        ("### Response:", ""),  # only a header: empty
        ("Paris\n\n### Instruction:\nName the capital of Spain.\n\n### Response:\nMadrid", "Paris"),
        ("Paris\n\n### Response:\nParis again", "Paris"),  # a second response section is cut
        ("4\n\n### Input:\n2+2", "4"),
    ],
)
def test_extract_response_on_odd_generations(generated, expected):
    assert extract_response(generated) == expected


def test_generate_cli_rejects_a_folder_without_a_run_and_empty_instructions(tmp_path):
    with pytest.raises(UserError, match="is not a saved run"):
        generate_main([str(tmp_path), "--instruction", "Say hi."])
    with pytest.raises(UserError, match="--instruction is empty"):
        generate_main([str(tmp_path), "--instruction", " "])


@pytest.mark.parametrize(
    "text, score", [("85", 85), ("Score: 70.", 70), ("I would give it 100", 100), ("none", None), ("250", None)]
)
def test_parse_score(text, score):
    assert parse_score(text) == score


class FakeJudge(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append((self.path, body))
        content = "42" if "Paris" in body["messages"][0]["content"] else "no idea"
        if self.path == "/api/chat":
            answer = {"message": {"role": "assistant", "content": content}}
        else:
            answer = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_server():
    server = HTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeJudge.requests.clear()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("suffix, path", [("/api/chat", "/api/chat"), ("/v1", "/v1/chat/completions"), ("", "/v1/chat/completions")])
def test_judge_scores_through_ollama_and_openai_compatible_endpoints(judge_server, suffix, path):
    rows = [
        {"instruction": "Name the capital of France.", "input": "", "output": "Paris.", "model_response": "Paris"},
        {"instruction": "Say hi.", "input": "", "output": "Hi.", "model_response": "Hello"},
    ]
    scores, summary = judge_responses(judge_server + suffix, "llama3", rows)
    assert scores == [42, None]
    assert summary["judge_mean_score"] == 42 and summary["judge_unparsed"] == 1
    assert [request[0] for request in FakeJudge.requests] == [path, path]
    prompt = FakeJudge.requests[0][1]["messages"][0]["content"]
    assert "correct output `Paris.`" in prompt and "model response `Paris`" in prompt
    assert FakeJudge.requests[0][1]["model"] == "llama3"


def test_judge_that_does_not_answer_is_one_clear_error():
    with pytest.raises(UserError, match="--judge_url: http://127.0.0.1:9/v1/chat/completions did not answer"):
        Judge("http://127.0.0.1:9", "llama3").score({"instruction": "x", "output": "y"}, "z")
