"""The Responses API and Anthropic Messages through the router, over FAKE engines, with the official clients."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict

CODE = "Fix this Python:\n```python\ndef f(x):\n  return x[\n```"


@pytest.fixture
async def router(fake_engines: dict[str, FakeEngineServer]) -> Any:
    async with make_router(fleet_dict(), {n: e.url for n, e in fake_engines.items()}) as (c, app):
        yield c, app


def _openai(c: httpx.AsyncClient) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url="http://router/v1", api_key="unused", http_client=c, max_retries=0)


def _anthropic(app: Any) -> Any:
    """The official Anthropic client in process (it ships its own httpx fork, ``httpx2``)."""
    import httpx2
    from anthropic import AsyncAnthropic

    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://router")
    return AsyncAnthropic(base_url="http://router", api_key="unused", http_client=http, max_retries=0)


async def test_responses_auto_routes_by_input_and_instructions(router: Any) -> None:
    c, _ = router
    raw = await _openai(c).responses.with_raw_response.create(model="auto", input=CODE, max_output_tokens=5)
    assert raw.headers["x-qwen-task"] == "code" and raw.headers["x-qwen-model"] == "coder"
    assert raw.headers["x-qwen-replica"] == "r0" and raw.headers["x-request-id"]
    resp = raw.parse()
    assert resp.id.startswith("resp_") and resp.usage.output_tokens == 5
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Prove that sqrt(2) is irrational."}]}]
    raw = await _openai(c).responses.with_raw_response.create(model="auto", input=items,
                                                              instructions="Answer rigorously.")
    assert raw.headers["x-qwen-task"] == "reasoning" and raw.headers["x-qwen-model"] == "moe"


async def test_responses_stream_and_stored_follow_ups_reach_the_same_replica(
        fake_engines: dict[str, FakeEngineServer]) -> None:
    other = FakeEngineServer("general", ttft_s=0.0, tokens_per_s=5000.0)
    try:
        urls = {"general": [fake_engines["general"].url, other.url], "coder": fake_engines["coder"].url,
                "moe": fake_engines["moe"].url}
        data = fleet_dict()
        data["deployments"][0]["replica_routing"] = {"policy": "round_robin"}
        async with make_router(data, urls) as (c, _):
            client = _openai(c)
            stream = await client.responses.create(model="general", input="hello there", stream=True,
                                                   max_output_tokens=4)
            kinds = [event.type async for event in stream]
            assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
            assert kinds.count("response.output_text.delta") == 4
            first = await client.responses.create(model="general", input="remember me", max_output_tokens=3)
            homes = set()
            for _ in range(4):  # round-robin alternates, but a stored response is only on one replica
                raw = await client.responses.with_raw_response.retrieve(first.id)
                assert raw.parse().id == first.id and raw.headers["x-qwen-replica-reason"] == "stored"
                homes.add(raw.headers["x-qwen-replica"])
                follow = await client.responses.with_raw_response.create(
                    model="auto", input="and then?", previous_response_id=first.id, max_output_tokens=2)
                assert follow.headers["x-qwen-model"] == "general"
                homes.add(follow.headers["x-qwen-replica"])
            assert len(homes) == 1, "retrieve and previous_response_id pinned to the storing replica"
            r = await c.get("/v1/responses/resp_unknown")
            assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"
            r = await c.post("/v1/responses", json={"model": "general", "input": "x",
                                                     "previous_response_id": "resp_nope"})
            assert r.status_code == 404 and r.json()["error"]["param"] == "previous_response_id"
    finally:
        other.stop()


async def test_responses_bad_input_is_a_400_naming_the_field(router: Any) -> None:
    c, _ = router
    for body, param in (({"model": "auto"}, "input"), ({"model": "auto", "input": ""}, "input"),
                        ({"model": "auto", "input": [{"type": "bogus"}]}, "input[0].type"),
                        ({"model": "auto", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
                        ({"model": "auto", "input": "x", "store": "yes"}, "store"),
                        ({"model": "nope", "input": "x"}, "model")):
        r = await c.post("/v1/responses", json=body)
        assert r.status_code in (400, 404), (body, r.text)
        assert r.json()["error"]["param"] == param, body


async def test_messages_with_the_anthropic_client(router: Any) -> None:
    _, app = router
    client = _anthropic(app)
    raw = await client.messages.with_raw_response.create(
        model="auto", max_tokens=6, system="You are a coding assistant.",
        messages=[{"role": "user", "content": CODE}])
    assert raw.headers["x-qwen-task"] == "code" and raw.headers["x-qwen-model"] == "coder"
    msg = await raw.parse()
    assert msg.role == "assistant" and msg.usage.output_tokens == 6
    texts: list[str] = []
    async with client.messages.stream(model="general", max_tokens=5,
                                      messages=[{"role": "user", "content": "hi"}]) as stream:
        async for text in stream.text_stream:
            texts.append(text)
        final = await stream.get_final_message()
    assert len(texts) == 5 and final.usage.output_tokens == 5
    count = await client.messages.count_tokens(model="general", messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens > 0


async def test_messages_errors_come_in_anthropic_shape(router: Any) -> None:
    c, app = router
    r = await c.post("/v1/messages", json={"model": "general", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    r = await c.post("/v1/messages", json={"model": "nope", "max_tokens": 3,
                                            "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = await c.post("/v1/messages", content=b"{not json")
    assert r.status_code == 400 and r.json()["type"] == "error"
    from anthropic import BadRequestError

    with pytest.raises(BadRequestError):
        await _anthropic(app).messages.create(model="general", max_tokens=2,
                                            messages=[{"role": "system", "content": "x"}])


async def test_x_api_key_is_accepted_and_errors_keep_the_shape(fake_engines: dict[str, FakeEngineServer],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIT_KEYS", "sk-anthropic-style")
    data = fleet_dict()
    data["security"] = {"require_api_key": True, "api_keys_env": "UNIT_KEYS"}
    async with make_router(data, {n: e.url for n, e in fake_engines.items()}) as (c, _):
        body = {"model": "general", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
        r = await c.post("/v1/messages", json=body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = await c.post("/v1/messages", json=body, headers={"x-api-key": "sk-anthropic-style"})
        assert r.status_code == 200 and r.json()["type"] == "message"
        r = await c.post("/v1/responses", json={"model": "general", "input": "x"},
                         headers={"x-api-key": "sk-anthropic-style"})
        assert r.status_code == 200


async def test_hostile_inputs_on_the_new_paths_get_no_5xx(router: Any) -> None:
    """The chaos bench's hand-written hostile cases for /v1/responses and /v1/messages, over FAKE engines."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "chaos"))
    from hostile import hand_cases

    c, _ = router
    cases = [case for case in hand_cases() if case[1].startswith(("/v1/responses", "/v1/messages"))]
    assert len(cases) >= 15
    for name, path, raw, headers in cases:
        r = await c.post(path, content=raw, headers={"content-type": "application/json", **headers})
        assert r.status_code < 500, (name, r.status_code, r.text[:200])
        if r.status_code >= 400:
            body = r.json()
            assert body["error"]["message"] and (body.get("type") == "error") == path.startswith("/v1/messages"), name
