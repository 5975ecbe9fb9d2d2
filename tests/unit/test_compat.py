"""Compatibility with older vLLM clients (serve/router/compat.py): ``guided_*`` request fields rewritten to
``structured_outputs``, and ``reasoning`` mirrored as ``reasoning_content``; alone and in the router over FAKE
engines."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from serve.router.compat import upgrade_legacy_fields
from serve.router.protocol import InvalidRequestError
from tests.router_kit import make_router
from tests.sse import streamed_fields
from tests.unit.conftest import FakeEngineServer, fleet_dict

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(("field", "value", "key"), [
    ("guided_json", SCHEMA, "json"), ("guided_regex", "[0-9]+", "regex"),
    ("guided_choice", ["yes", "no"], "choice"), ("guided_grammar", "root ::= \"x\"", "grammar"),
])
def test_each_constraint_is_moved(field: str, value: Any, key: str) -> None:
    body = {"messages": [], field: value}
    assert upgrade_legacy_fields(body) == [f"{field}->structured_outputs.{key}"]
    assert body == {"messages": [], "structured_outputs": {key: value}}


def test_options_travel_with_a_constraint_and_backend_is_dropped() -> None:
    body = {"guided_json": SCHEMA, "guided_whitespace_pattern": r"\s?", "guided_decoding_backend": "xgrammar"}
    done = upgrade_legacy_fields(body)
    assert body == {"structured_outputs": {"json": SCHEMA, "whitespace_pattern": r"\s?"}}
    assert done == ["guided_json->structured_outputs.json",
                    "guided_whitespace_pattern->structured_outputs.whitespace_pattern",
                    "guided_decoding_backend->dropped"]


def test_options_alone_are_dropped_and_nothing_else_changes() -> None:
    body = {"guided_whitespace_pattern": " ", "guided_decoding_backend": "outlines", "temperature": 0.5}
    assert upgrade_legacy_fields(body) == ["guided_whitespace_pattern->dropped", "guided_decoding_backend->dropped"]
    assert body == {"temperature": 0.5}
    untouched = {"messages": [], "structured_outputs": {"choice": ["a"]}}
    assert upgrade_legacy_fields(untouched) == [] and untouched == {"messages": [], "structured_outputs": {"choice": ["a"]}}


def test_old_and_new_together_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as e:
        upgrade_legacy_fields({"guided_regex": "x", "structured_outputs": {"regex": "y"}})
    assert e.value.param == "guided_regex"


@pytest.fixture
def client(router_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return router_client


async def test_router_names_the_rewrite(client: httpx.AsyncClient) -> None:
    body = {"model": "general", "messages": [{"role": "user", "content": "yes or no?"}], "max_tokens": 2,
            "guided_choice": ["yes", "no"]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["x-qwen-compat"] == "guided_choice->structured_outputs.choice"
    plain = await client.post("/v1/chat/completions", json={**body, "guided_choice": None})
    assert plain.status_code == 200 and plain.headers["x-qwen-compat"] == "guided_choice->dropped"
    del body["guided_choice"]
    assert "x-qwen-compat" not in (await client.post("/v1/chat/completions", json=body)).headers
    metrics = (await client.get("/metrics")).text
    assert 'qwen_router_compat_rewrites_total{field="guided_choice"} 2.0' in metrics
    both = {**body, "guided_json": SCHEMA, "structured_outputs": {"json": SCHEMA}}
    r = await client.post("/v1/chat/completions", json=both)
    assert r.status_code == 400 and r.json()["error"]["param"] == "guided_json"


# --- reasoning_content mirrored ---------------------------------------------------------------------
def test_mirror_body_adds_reasoning_content_and_leaves_other_answers_alone() -> None:
    from serve.router.compat import mirror_reasoning_body

    data = b'{"choices":[{"message":{"role":"assistant","reasoning":"r1","content":"c"}}],"usage":{}}'
    msg = json.loads(mirror_reasoning_body(data))["choices"][0]["message"]
    assert msg["reasoning_content"] == msg["reasoning"] == "r1" and msg["content"] == "c"
    plain = b'{"choices":[{"message":{"role":"assistant","content":"c"}}]}'
    assert mirror_reasoning_body(plain) is plain


def test_stream_mirror_across_arbitrary_chunk_boundaries() -> None:
    from serve.router.compat import ReasoningMirror

    events = [b'data: {"choices":[{"delta":{"role":"assistant"}}]}',
              b'data: {"choices":[{"delta":{"reasoning":"think "}}]}',
              b'data: {"choices":[{"delta":{"reasoning":"more"}}]}',
              b'data: {"choices":[{"delta":{"content":"answer \\"reasoning\\": no"}}]}',
              b"data: [DONE]"]
    stream = b"".join(e + b"\n\n" for e in events)
    for size in (1, 5, 17, len(stream)):
        m = ReasoningMirror()
        out = b"".join(m.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + m.flush()
        got = out.split(b"\n\n")[:-1]
        assert len(got) == len(events)
        assert got[0] == events[0] and got[3] == events[3] and got[4] == events[4]  # untouched bytes
        for i in (1, 2):
            delta = json.loads(got[i][6:])["choices"][0]["delta"]
            assert delta["reasoning_content"] == delta["reasoning"]


async def test_router_mirrors_reasoning_when_configured(fake_engines: dict[str, FakeEngineServer]) -> None:
    body = {"model": "general", "messages": [{"role": "user", "content": "why?"}], "max_tokens": 8,
            "chat_template_kwargs": {"enable_thinking": True}}
    async with make_router(fleet_dict(mirror_reasoning_content=True),
                           {n: e.url for n, e in fake_engines.items()}) as (c, _):
        msg = (await c.post("/v1/chat/completions", json=body)).json()["choices"][0]["message"]
        assert msg["reasoning"] and msg["reasoning_content"] == msg["reasoning"]
        streamed = await streamed_fields(c, body, "reasoning", "reasoning_content")
        assert streamed["reasoning"] and streamed["reasoning_content"] == streamed["reasoning"]
