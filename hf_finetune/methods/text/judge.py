"""Optional LLM judge: a larger model scores each test response 0-100, as chapter 7 does with
Llama 3 through Ollama.

Only used with `--judge_url`; without it nothing is sent anywhere. The URL is either an
Ollama server (`http://localhost:11434`, or its `/api/chat`) or any OpenAI-compatible server
(`http://host:8000/v1`, or its `/v1/chat/completions`; vLLM, llama.cpp, LM Studio, ...).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from hf_finetune.core.errors import UserError

from .prompt import format_request

TIMEOUT_SECONDS = 120


def judge_prompt(entry: dict, response: str) -> str:
    return (
        f"Given the input `{format_request(entry['instruction'], entry.get('input') or '')}` "
        f"and correct output `{entry['output']}`, score the model response `{response}` on a scale "
        f"from 0 to 100, where 100 is the best score. Respond with the integer number only."
    )


def parse_score(text: str) -> int | None:
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    if not match:
        return None
    value = float(match.group())
    return int(round(value)) if 0 <= value <= 100 else None


@dataclass
class Judge:
    url: str
    model: str

    @property
    def is_ollama(self) -> bool:
        return "/api/" in self.url or ":11434" in self.url

    def endpoint(self) -> str:
        base = self.url.rstrip("/")
        if self.is_ollama:
            return base if base.endswith("/api/chat") else base.split("/api/")[0] + "/api/chat"
        if base.endswith("/chat/completions"):
            return base
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def _request(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if self.is_ollama:
            body = {"model": self.model, "messages": messages, "stream": False,
                    "options": {"seed": 123, "temperature": 0, "num_ctx": 2048}}
        else:
            body = {"model": self.model, "messages": messages, "temperature": 0, "seed": 123}
        headers = {"Content-Type": "application/json"}
        if not self.is_ollama and os.environ.get("OPENAI_API_KEY"):
            headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
        request = urllib.request.Request(self.endpoint(), data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                payload = json.loads(answer.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, TimeoutError, json.JSONDecodeError) as error:
            raise UserError(f"--judge_url: {self.endpoint()} did not answer ({getattr(error, 'reason', error)}).") from None
        try:
            if self.is_ollama:
                return payload["message"]["content"]
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"--judge_url: {self.endpoint()} answered without a chat message ({str(payload)[:200]}).") from None

    def score(self, entry: dict, response: str) -> int | None:
        """The judge's score for one response, or None when its answer holds no number in 0-100."""
        return parse_score(self._request(judge_prompt(entry, response)))


def judge_responses(url: str, model: str, rows: list[dict]) -> tuple[list[int | None], dict]:
    """Scores for rows (instruction, input, output, model_response) and a summary."""
    judge = Judge(url, model)
    scores = [judge.score(row, row["model_response"]) for row in rows]
    valid = [score for score in scores if score is not None]
    summary = {
        "judge_endpoint": judge.endpoint(),
        "judge_model": model,
        "judge_scored": len(valid),
        "judge_unparsed": len(scores) - len(valid),
        "judge_mean_score": round(sum(valid) / len(valid), 2) if valid else None,
    }
    return scores, summary
