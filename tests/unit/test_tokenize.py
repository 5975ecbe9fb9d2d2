"""``/tokenize`` and ``/detokenize`` through the router over FAKE engines: relayed to the named or routed
model's replica, with the routing headers; bad bodies are 400s naming the parameter."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def client(router_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return router_client


async def test_tokenize_explicit_and_routed(client: httpx.AsyncClient) -> None:
    r = await client.post("/tokenize", json={"model": "coder", "prompt": "one two three four"})
    assert r.status_code == 200 and r.json()["count"] == 4 and r.json()["tokens"] == [0, 1, 2, 3]
    assert r.headers["x-qwen-model"] == "coder" and r.headers["x-qwen-task"] == "explicit"
    # a virtual model is routed like a generation request, and the chosen engine counts
    code = {"model": "auto", "messages": [{"role": "user", "content": "Fix this Python:\n```python\ndef f(:\n```"}]}
    r = await client.post("/tokenize", json=code)
    assert r.status_code == 200 and r.headers["x-qwen-task"] == "code" and r.headers["x-qwen-model"] == "coder"
    assert r.json()["count"] > 0


async def test_detokenize_relays(client: httpx.AsyncClient) -> None:
    r = await client.post("/detokenize", json={"model": "general", "tokens": [0, 1, 2]})
    assert r.status_code == 200 and r.json()["prompt"] == "the a and"


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/detokenize", {"model": "general", "tokens": "1 2"}, "tokens"),
    ("/detokenize", {"model": "general", "tokens": [1, -2]}, "tokens"),
    ("/detokenize", {"model": "general", "tokens": [True]}, "tokens"),
    ("/tokenize", {"model": "general", "messages": "hi"}, "messages"),
    ("/tokenize", {"model": 7, "prompt": "hi"}, "model"),
])
async def test_bad_bodies_are_400(client: httpx.AsyncClient, path: str, body: dict, param: str) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/tokenize", json={"model": "nope", "prompt": "hi"})
    assert r.status_code == 404 and r.json()["error"]["type"]
