"""The fake OpenAI server: protocol shapes, lengths, usage, errors, thinking, headers."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from loadtest.fake_server import create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(
        create_app(
            ttft_s=0.0,
            tokens_per_s=1e6,
            natural_len=8,
            reasoning_tokens=2,
            task_models={"code": "fake-coder"},
        )
    )


def _chunks(text: str) -> list:
    data = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def test_chat_stream_usage_and_lengths(client: TestClient) -> None:
    body = {
        "model": "fake-qwen",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    chunks = _chunks(client.post("/v1/chat/completions", json=body).text)
    tokens = [c for c in chunks if c["choices"] and "role" not in c["choices"][0]["delta"]]
    assert len(tokens) == 5 and tokens[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


def test_natural_stop_min_tokens_and_n(client: TestClient) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    r = client.post(
        "/v1/chat/completions", json={"model": "fake-qwen", "messages": msgs, "max_tokens": 100}
    ).json()
    assert r["choices"][0]["finish_reason"] == "stop" and r["usage"]["completion_tokens"] == 8
    r = client.post(
        "/v1/chat/completions", json={"messages": msgs, "max_tokens": 100, "min_tokens": 20, "n": 2}
    ).json()
    assert len(r["choices"]) == 2 and r["usage"]["completion_tokens"] == 40
    r = client.post("/v1/completions", json={"model": "fake-qwen", "prompt": "x", "max_tokens": 3}).json()
    assert r["object"] == "text_completion" and r["choices"][0]["finish_reason"] == "length"


def test_completions_stream_without_usage(client: TestClient) -> None:
    body = {"model": "fake-qwen", "prompt": "x", "max_tokens": 4, "stream": True}
    chunks = _chunks(client.post("/v1/completions", json=body).text)
    assert len(chunks) == 4 and all("usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks).count(" ") == 4


def test_thinking_separates_reasoning(client: TestClient) -> None:
    body = {
        "messages": [{"role": "user", "content": "q"}],
        "max_tokens": 6,
        "stream": True,
        "ignore_eos": True,
        "chat_template_kwargs": {"enable_thinking": True},
    }
    deltas = [c["choices"][0]["delta"] for c in _chunks(client.post("/v1/chat/completions", json=body).text)]
    assert sum("reasoning" in d for d in deltas) == 2
    assert sum(bool(d.get("content")) for d in deltas) == 4
    full = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert full["choices"][0]["message"]["reasoning"].count(" ") == 2


def test_errors_and_models(client: TestClient) -> None:
    assert client.post("/v1/chat/completions", json={"model": "nope", "messages": []}).status_code == 404
    assert client.post("/v1/chat/completions", json={"model": "fake-qwen"}).status_code == 400
    r = client.post("/v1/chat/completions", json={"messages": [], "max_tokens": 10**9})
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError"
    assert client.post("/v1/completions", content=b"[]").status_code == 400
    assert client.get("/v1/models").json()["data"][0]["id"] == "fake-qwen"
    bad = TestClient(create_app(error_rate=1.0))
    assert bad.post("/v1/completions", json={"prompt": "x"}).status_code == 503


def test_task_headers(client: TestClient) -> None:
    msgs = [{"role": "user", "content": "Write a python function"}]
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": msgs, "max_tokens": 1})
    assert r.headers["x-qwen-task"] == "code" and r.headers["x-qwen-model"] == "fake-coder"
    img = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "?"}, {"type": "image_url", "image_url": {"url": "x"}}],
        }
    ]
    r = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": img, "max_tokens": 1},
        headers={"x-qwen-task": "math"},
    )
    assert r.headers["x-qwen-task"] == "math"


def test_exact_prompt_tokens() -> None:
    c = TestClient(create_app(exact_prompt_tokens=True))
    r = c.post("/v1/completions", json={"prompt": " apple banana", "max_tokens": 1}).json()
    assert r["usage"]["prompt_tokens"] == 2
