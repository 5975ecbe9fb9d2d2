"""Requests a hostile or careless client can send: each gets a 4xx in the path's error shape (OpenAI's, or
Anthropic's on ``/v1/messages``), never a 5xx, over FAKE engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from serve.config import FleetConfig
from serve.errors import RouterError, anthropic_error_body
from serve.security.guard import estimate_tokens
from tests.router_kit import make_router
from tests.unit.conftest import AppServer, FakeEngineServer, fleet_dict

KEY = "sk-hostile-0123456789"
MSGS = [{"role": "user", "content": "hi"}]


def test_token_estimate_ignores_fields_of_other_apis() -> None:
    # n / best_of / max_tokens are validated only where their API defines them (chat, completions)
    for extra in ({"n": "x"}, {"best_of": [1]}, {"max_tokens": "x"}, {"max_completion_tokens": {}},
                  {"n": True}, {"n": -3}, {"max_tokens": 2.5}):
        assert estimate_tokens({"input": "hi", "max_output_tokens": 10, **extra}, 256) >= 10, extra
    assert estimate_tokens({"prompt": "x", "max_tokens": 10, "n": 3}, 256) >= 30
    assert estimate_tokens({"prompt": "x"}, 256) >= 256


@pytest.fixture
def limited_fleet(monkeypatch: pytest.MonkeyPatch) -> FleetConfig:
    monkeypatch.setenv("HOSTILE_KEYS", f"hostile:{KEY}")
    data = fleet_dict()
    data["security"] = {"require_api_key": True, "api_keys_env": "HOSTILE_KEYS",
                        "rate_limit": {"per_key": {"hostile": {"tokens_per_minute": 100_000}}}}
    return FleetConfig.from_dict(data)


async def test_foreign_fields_under_a_token_limit_are_no_500(fake_engines: dict[str, FakeEngineServer],
                                                             limited_fleet: FleetConfig) -> None:
    urls = {n: e.url for n, e in fake_engines.items()}
    async with make_router(limited_fleet, urls, client=("10.0.0.9", 1),
                           headers={"authorization": f"Bearer {KEY}"}) as (c, _):
        for path, body in (
                ("/v1/responses", {"model": "general", "input": "hi", "max_tokens": "x"}),
                ("/v1/responses", {"model": "general", "input": "hi", "best_of": [1]}),
                ("/v1/messages", {"model": "general", "messages": MSGS, "max_tokens": 3, "n": "x"}),
                ("/v1/messages", {"model": "general", "messages": MSGS, "max_tokens": 3,
                                  "max_completion_tokens": "x"})):
            r = await c.post(path, json=body)
            assert r.status_code < 500, (body, r.text)


# --- an engine that answers errors ----------------------------------------------------------------------
def _refusing_engine() -> AppServer:
    """A FAKE engine whose answer is chosen by the request's ``user`` field (status, body, headers)."""
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    answers: dict[str, tuple[int, bytes, str, dict[str, str]]] = {
        "openai400": (400, b'{"error": {"message": "bad thing", "type": "BadRequestError", "param": "x", '
                           b'"code": 400}}', "application/json", {}),
        "detail422": (422, b'{"detail": [{"loc": ["body", "top_k"], "msg": "bad"}]}', "application/json", {}),
        "html400": (400, b"<html>nope</html>", "text/html", {}),
        "busy503": (503, b'{"error": {"message": "busy"}}', "application/json", {"retry-after": "7"}),
        "busy503bare": (503, b"", "text/plain", {}),
        "slow429": (429, b'{"error": {"message": "slow down"}}', "application/json", {"retry-after": "3"}),
        "secret401": (401, b'{"error": {"message": "engine secret", "type": "authentication_error"}}',
                      "application/json", {}),
        "crash500": (500, b"Traceback (most recent call last): /srv/secret.py", "text/plain", {}),
    }

    async def answer(request: Request) -> Response:
        user = orjson.loads(await request.body())["user"]
        if user.startswith("store:"):  # a stored response whose later GET answers ``answers[<suffix>]``
            return Response(b'{"id": "resp_%s", "object": "response", "status": "completed", "output": []}'
                            % user[6:].encode(), media_type="application/json")
        status, body, ctype, headers = answers[user]
        return Response(body, status_code=status, media_type=ctype, headers=headers)

    async def stored(request: Request) -> Response:
        status, body, ctype, headers = answers[request.path_params["rid"].removeprefix("resp_")]
        return Response(body, status_code=status, media_type=ctype, headers=headers)

    paths = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens")
    return AppServer(Starlette(routes=[*(Route(p, answer, methods=["POST"]) for p in paths),
                                       Route("/v1/responses/{rid}", stored, methods=["GET"])]))


@pytest.fixture(scope="module")
def refusing_engine() -> Iterator[AppServer]:
    e = _refusing_engine()
    yield e
    e.stop()


def _openai_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    return dict(err)


def _anthropic_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["type"] == "error" and set(doc["error"]) == {"type", "message"}, doc
    return dict(doc["error"])


async def test_engine_errors_come_in_the_router_paths_shape(refusing_engine: AppServer) -> None:
    urls = {n: refusing_engine.url for n in ("general", "coder", "moe")}
    chat = {"model": "general", "messages": MSGS, "max_tokens": 3}
    anth = {"model": "general", "messages": MSGS, "max_tokens": 3}
    async with make_router(fleet_dict(), urls) as (c, _):
        r = await c.post("/v1/messages", json={**anth, "user": "openai400"})
        assert "bad thing" in _anthropic_error(r, 400)["message"] and r.headers["x-qwen-model"] == "general"
        r = await c.post("/v1/messages/count_tokens", json={"model": "general", "messages": MSGS, "user": "html400"})
        assert _anthropic_error(r, 400)["type"] == "invalid_request_error"
        r = await c.post("/v1/chat/completions", json={**chat, "user": "detail422"})
        assert _openai_error(r, 422)["param"] == "top_k"
        for stream in (False, True):
            r = await c.post("/v1/chat/completions", json={**chat, "user": "html400", "stream": stream})
            assert _openai_error(r, 400)["type"] == "invalid_request_error"
        r = await c.post("/v1/responses", json={"model": "general", "input": "x", "user": "openai400"})
        assert _openai_error(r, 400)["message"] == "bad thing"


async def test_engine_overload_is_503_or_429_with_retry_after(refusing_engine: AppServer) -> None:
    urls = {n: refusing_engine.url for n in ("general", "coder", "moe")}
    chat = {"model": "general", "messages": MSGS, "max_tokens": 3}
    async with make_router(fleet_dict(), urls) as (c, _):
        r = await c.post("/v1/chat/completions", json={**chat, "user": "busy503"})
        assert _openai_error(r, 503)["type"] == "service_unavailable_error" and r.headers["retry-after"] == "7"
        r = await c.post("/v1/messages", json={**chat, "user": "busy503bare", "stream": True})
        assert _anthropic_error(r, 503)["type"] == "overloaded_error" and int(r.headers["retry-after"]) >= 1
        r = await c.post("/v1/responses", json={"model": "general", "input": "x", "user": "slow429"})
        assert _openai_error(r, 429)["type"] == "rate_limit_error" and r.headers["retry-after"] == "3"


async def test_engine_failures_are_502_without_the_engines_text(refusing_engine: AppServer) -> None:
    urls = {n: refusing_engine.url for n in ("general", "coder", "moe")}
    chat = {"model": "general", "messages": MSGS, "max_tokens": 3}
    async with make_router(fleet_dict(), urls) as (c, _):
        for user in ("crash500", "secret401"):  # 401: the engine refused the router's secret, not the client
            r = await c.post("/v1/chat/completions", json={**chat, "user": user})
            assert _openai_error(r, 502)["code"] == "engine_error"
            assert "Traceback" not in r.text and "secret" not in r.text
            r = await c.post("/v1/messages", json={**chat, "user": user})
            assert _anthropic_error(r, 502)["type"] == "api_error" and "Traceback" not in r.text


async def test_anthropic_error_type_of_other_4xx_is_a_client_error(router_client: Any) -> None:
    r = await router_client.get("/v1/messages")  # 405
    assert _anthropic_error(r, 405)["type"] == "invalid_request_error"
    types = {status: anthropic_error_body(RouterError("x", status=status))[1]["error"]["type"]
             for status in (408, 409, 422, 502)}
    assert types == {408: "timeout_error", 409: "invalid_request_error", 422: "invalid_request_error",
                     502: "api_error"}


# --- bodies the router's validator must refuse before an engine sees them ----------------------------------
CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", {"tools": [CHAT_TOOL],
                              "tool_choice": {"type": "function", "function": {"name": "absent"}}},
     "tool_choice.function.name"),
    ("/v1/chat/completions", {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     "tool_choice.function.name"),
    ("/v1/chat/completions", {"tools": [CHAT_TOOL], "tool_choice": {"type": "function"}},
     "tool_choice.function.name"),
    ("/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     "input[0].content[0].text"),
    ("/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ("/v1/responses", {"input": [{"type": "function_call"}]}, "input[0].call_id"),
    ("/v1/responses", {"input": [{"type": "function_call", "call_id": "c1", "name": 3, "arguments": "{}"}]},
     "input[0].name"),
    ("/v1/responses", {"input": [{"type": "function_call_output", "call_id": "c1", "output": 5}]},
     "input[0].output"),
    ("/v1/responses", {"input": [{"type": "item_reference"}]}, "input[0].id"),
    ("/v1/responses", {"tools": [{"type": "function"}]}, "tools[0].name"),
    ("/v1/responses", {"tool_choice": "bogus"}, "tool_choice"),
    ("/v1/responses", {"tool_choice": 5}, "tool_choice"),
    ("/v1/responses", {"tools": [{"type": "function", "name": "f"}],
                       "tool_choice": {"type": "function", "name": "absent"}}, "tool_choice.name"),
])
async def test_openai_bodies_refused_naming_the_field(router_client: Any, path: str, body: dict[str, Any],
                                                      param: str) -> None:
    base = ({"model": "general", "messages": MSGS, "max_tokens": 3} if path == "/v1/chat/completions"
            else {"model": "general", "input": "hi", "max_output_tokens": 3})
    r = await router_client.post(path, json={**base, **body})
    assert _openai_error(r, 400)["param"] == param


@pytest.mark.parametrize(("body", "param"), [
    ({"system": [5]}, "system[0]"),
    ({"system": [{"type": "bogus", "text": "x"}]}, "system[0]"),
    ({"system": [{"type": "text", "text": 5}]}, "system[0]"),
    ({"system": [{"type": "image", "source": {"type": "url", "url": "http://x/a.png"}}]}, "system[0]"),
    ({"tool_choice": "any"}, "tool_choice"),
    ({"tool_choice": {"type": "bogus"}}, "tool_choice"),
    ({"tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "g"}},
     "tool_choice.name"),
    ({"tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name"),
])
async def test_anthropic_bodies_refused_naming_the_field(router_client: Any, body: dict[str, Any],
                                                         param: str) -> None:
    for path, base in (("/v1/messages", {"model": "general", "messages": MSGS, "max_tokens": 3}),
                       ("/v1/messages/count_tokens", {"model": "general", "messages": MSGS})):
        r = await router_client.post(path, json={**base, **body})
        assert _anthropic_error(r, 400)["message"].startswith(f"{param}: "), (path, r.text)


async def test_well_formed_tool_bodies_still_pass(router_client: Any) -> None:
    r = await router_client.post("/v1/chat/completions", json={
        "model": "general", "messages": MSGS, "max_tokens": 3, "tools": [CHAT_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert r.status_code == 200, r.text
    r = await router_client.post("/v1/responses", json={
        "model": "general", "max_output_tokens": 3, "tools": [{"type": "function", "name": "f"}],
        "tool_choice": {"type": "function", "name": "f"},
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]})
    assert r.status_code == 200, r.text
    r = await router_client.post("/v1/messages", json={
        "model": "general", "messages": MSGS, "max_tokens": 3, "system": [{"type": "text", "text": "Be brief."}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "f"}})
    assert r.status_code == 200, r.text


async def test_stored_response_errors_are_answered_like_generation_errors(refusing_engine: AppServer) -> None:
    urls = {n: refusing_engine.url for n in ("general", "coder", "moe")}
    async with make_router(fleet_dict(), urls) as (c, _):
        for name in ("busy503", "openai400", "crash500", "secret401"):
            r = await c.post("/v1/responses", json={"model": "general", "input": "x", "user": f"store:{name}"})
            assert r.status_code == 200 and r.json()["id"] == f"resp_{name}", r.text
        r = await c.get("/v1/responses/resp_busy503")
        assert _openai_error(r, 503)["code"] == "engine_error" and r.headers["retry-after"] == "7"
        r = await c.get("/v1/responses/resp_openai400")
        assert _openai_error(r, 400)["message"] == "bad thing" and r.headers["x-qwen-replica-reason"] == "stored"
        for name in ("crash500", "secret401"):
            r = await c.get(f"/v1/responses/resp_{name}")
            assert _openai_error(r, 502)["code"] == "engine_error"
            assert "Traceback" not in r.text and "secret" not in r.text


async def test_an_engine_failure_is_counted_once(refusing_engine: AppServer) -> None:
    urls = {n: refusing_engine.url for n in ("general", "coder", "moe")}
    chat = {"model": "general", "messages": MSGS, "max_tokens": 3}
    async with make_router(fleet_dict(), urls) as (c, app):
        for user in ("crash500", "busy503", "openai400"):
            await c.post("/v1/chat/completions", json={**chat, "user": user})
        text = (await c.get("/metrics")).text

    def value(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix) and not line.startswith("#"))

    assert value('qwen_router_rejections_total{reason="upstream"}') == 1
    assert value('qwen_router_rejections_total{reason="overloaded"}') == 1
    assert value("qwen_router_requests_total{") == 3  # one each: 5xx, 5xx, 4xx


def _breaking_engine() -> AppServer:
    """A FAKE engine whose streams send one event, then break (the connection drops mid-answer)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def answer(request: Request) -> StreamingResponse:
        async def events() -> Any:
            yield b'data: {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_b"}}\n\n'
            raise RuntimeError("engine died")  # uvicorn drops the connection

        return StreamingResponse(events(), media_type="text/event-stream")

    paths = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
    return AppServer(Starlette(routes=[Route(p, answer, methods=["POST"]) for p in paths]))


async def test_a_broken_stream_ends_with_the_error_event_of_its_api() -> None:
    import orjson

    engine = _breaking_engine()
    try:
        urls = {n: engine.url for n in ("general", "coder", "moe")}
        async with make_router(fleet_dict(), urls) as (c, _):
            chat = {"model": "general", "messages": MSGS, "max_tokens": 3, "stream": True}
            r = await c.post("/v1/chat/completions", json=chat)
            events = [e for e in r.text.split("\n\n") if e]
            assert events[-1] == "data: [DONE]"
            assert orjson.loads(events[-2].removeprefix("data: "))["error"]["code"] == "engine_error"
            # a broken stream marks its endpoint down for a second: each API on a deployment of its own
            r = await c.post("/v1/responses", json={"model": "coder", "input": "x", "stream": True})
            events = [e for e in r.text.split("\n\n") if e]
            assert events[-1] == "data: [DONE]" and events[-2].startswith("event: error\ndata: ")
            err = orjson.loads(events[-2].split("data: ", 1)[1])
            assert err["type"] == "error" and err["code"] == "engine_error" and "sequence_number" in err
            assert err["error"]["message"] == err["message"]  # what OpenAI's SDKs raise on
            r = await c.post("/v1/messages", json={**chat, "model": "moe"})
            events = [e for e in r.text.split("\n\n") if e]
            assert events[-1].startswith("event: error\ndata: ") and "[DONE]" not in r.text
            assert orjson.loads(events[-1].split("data: ", 1)[1])["error"]["type"] == "api_error"
            assert "engine died" not in r.text
    finally:
        engine.stop()
