"""The router app over FAKE engines: routing, headers, relay, errors, spill-over, failover, metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.router_kit import free_port, make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict


@pytest.fixture
async def router(fake_engines: dict[str, FakeEngineServer]) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async with make_router(fleet_dict(), {n: e.url for n, e in fake_engines.items()}) as (c, app):
        yield c, app


def chat(content: Any, **kw: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **kw}


async def test_code_prompt_routes_to_coder_with_headers(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/chat/completions", json=chat("Fix this Python:\n```python\ndef f(x):\n  return x[\n```"))
    assert r.status_code == 200, r.text
    assert r.headers["x-qwen-task"] == "code"
    assert r.headers["x-qwen-model"] == "coder"
    assert "coder" in r.headers["x-qwen-route-reason"]
    assert r.json()["model"] == "coder"
    assert r.headers["x-request-id"]


async def test_route_endpoint_agrees_with_dispatch(router: Any) -> None:
    c, _ = router
    body = chat("Solve for x: 3x + 5 = 20. Show the steps.")
    d = (await c.post("/v1/route", json=body)).json()
    r = await c.post("/v1/chat/completions", json=body)
    assert d["task"] == r.headers["x-qwen-task"] == "math"
    assert d["model"] == r.headers["x-qwen-model"] == "general"
    assert d["candidates"] == ["general", "moe"]
    assert d["signals"], "the decision lists the signals it used"


async def test_explicit_deployment_and_alias(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/chat/completions", json={**chat("hello"), "model": "moe"})
    assert r.headers["x-qwen-model"] == "moe" and r.headers["x-qwen-task"] == "explicit"
    r = await c.post("/v1/chat/completions", json={**chat("hello"), "model": "qwen-code"})
    assert r.headers["x-qwen-task"] == "code" and r.headers["x-qwen-model"] == "coder"


async def test_streaming_relay_has_headers_and_usage(router: Any) -> None:
    c, _ = router
    body = chat("Tell me a story", stream=True, stream_options={"include_usage": True}, ignore_eos=True)
    async with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-qwen-task"] == "general"
        events = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
    assert usage and usage[-1]["completion_tokens"] == 4


async def test_task_defaults_fill_only_unset_fields(router: Any, fake_engines: dict[str, FakeEngineServer]) -> None:
    c, app = router
    svc = app.state.service
    body = chat("Write a bash script that renames *.txt files", temperature=0.1)
    from serve.router.facts import facts_of

    decision = svc.decide(facts_of(body), body.get("model"), {})
    assert decision.task == "code"
    from serve.router.defaults import apply_task_defaults

    b = dict(body)
    applied = apply_task_defaults(b, svc.fleet.router.tasks["code"], svc.chooser.specs["coder"].capabilities)
    assert b["temperature"] == 0.1, "a client's value is never overridden"
    assert b["top_p"] == 0.8 and "top_p" in applied
    assert b["messages"][0] == {"role": "system", "content": "You are a coding assistant."}


async def test_thinking_default_only_for_thinking_models(router: Any) -> None:
    _, app = router
    svc = app.state.service
    from serve.router.defaults import apply_task_defaults

    b = chat("hi")
    apply_task_defaults(b, svc.fleet.router.tasks["general"], svc.chooser.specs["general"].capabilities)
    assert b["chat_template_kwargs"] == {"enable_thinking": False}
    b = chat("hi")
    apply_task_defaults(b, svc.fleet.router.tasks["general"], svc.chooser.specs["coder"].capabilities)
    assert "chat_template_kwargs" not in b


async def test_image_without_vision_deployment_is_400(router: Any) -> None:
    c, _ = router
    parts = [{"type": "text", "text": "What is in this picture?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    r = await c.post("/v1/chat/completions", json=chat(parts))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "messages" and "vision" in err["message"]
    r = await c.post("/v1/chat/completions", json={**chat(parts), "model": "general"})
    assert r.status_code == 400 and "images" in r.json()["error"]["message"]


async def test_prompt_longer_than_context_is_400(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/chat/completions", json={**chat("word " * 3000), "max_tokens": 100})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "no_capable_deployment"
    assert "context length" in r.json()["error"]["message"]


async def test_unknown_model_404_and_bad_params_400(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/chat/completions", json={**chat("x"), "model": "gpt-5"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    for field, value in (("temperature", -1), ("n", 100), ("top_p", "high"), ("stop", ["s"] * 50)):
        r = await c.post("/v1/chat/completions", json={**chat("x"), field: value})
        assert r.status_code == 400, (field, r.text)
        assert r.json()["error"]["param"] == field
    r = await c.post("/v1/chat/completions", content=b'{"temperature": NaN}')
    assert r.status_code == 400


async def test_saturated_first_candidate_spills_over(router: Any) -> None:
    c, app = router
    svc = app.state.service
    ep = svc.registry.load("coder").endpoints[0]
    ep.ongoing += 2  # threshold: 0.5 x max_ongoing 4 = 2 in flight
    svc.registry.load("coder").ongoing += 2
    try:
        r = await c.post("/v1/chat/completions", json=chat("```python\nimport os\n```\nexplain this code"))
        assert r.headers["x-qwen-model"] == "general"
        assert "coder:saturated" in r.headers["x-qwen-route-reason"]
        metrics = (await c.get("/metrics")).text
        assert 'qwen_router_spillovers_total{reason="saturated"} 1.0' in metrics
    finally:
        ep.ongoing -= 2
        svc.registry.load("coder").ongoing -= 2


async def test_engine_queues_spill_when_a_queue_threshold_is_set(fake_engines: dict[str, FakeEngineServer]) -> None:
    import time

    from serve.engine_stats import EngineStats

    fleet = fleet_dict(saturation={"max_ongoing_ratio": 0.5, "queue_threshold": 3})
    body = chat("```python\nimport os\n```\nexplain this code")

    async def engine_reports(waiting: int, age_s: float = 0.0) -> str:
        # what a heartbeat brings: the engine's own queue, which this router's in-flight count does not see
        registry = app.state.service.registry
        registry._stats[("coder", "r0")] = EngineStats(waiting=waiting, updated=time.time() - age_s)
        await registry.refresh()
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200
        return f"{r.headers['x-qwen-model']} {r.headers['x-qwen-route-reason']}"

    async with make_router(fleet, {n: e.url for n, e in fake_engines.items()}) as (c, app):
        got = await engine_reports(4)
        assert got.startswith("general ") and "coder:saturated" in got
        assert (await engine_reports(3)).startswith("coder "), "at the threshold: still the first choice"
        assert (await engine_reports(50, age_s=60)).startswith("coder "), "stale figures are ignored"


async def test_over_hard_limit_everywhere_is_503_with_retry_after(router: Any) -> None:
    c, app = router
    svc = app.state.service
    for name in ("general", "moe"):
        svc.registry.load(name).ongoing += 100
    try:
        r = await c.post("/v1/chat/completions", json=chat("hello, how are you?"))
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "service_unavailable_error"
    finally:
        for name in ("general", "moe"):
            svc.registry.load(name).ongoing -= 100


async def test_dead_endpoint_fails_over_to_next_candidate(fake_engines: dict[str, FakeEngineServer]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    urls = {"coder": dead, "general": fake_engines["general"].url, "moe": fake_engines["moe"].url}
    async with make_router(fleet_dict(), urls) as (c, _):
            r = await c.post("/v1/chat/completions", json=chat("```python\nprint(1)\n```\nwhy?"))
            assert r.status_code == 200
            assert r.headers["x-qwen-model"] == "general"
            # the dead replica is now avoided without another connection attempt
            d = (await c.post("/v1/route", json=chat("```python\nprint(1)\n```\nwhy?"))).json()
            assert d["model"] == "general" and "coder:down" in d["reason"]
            r = await c.post("/v1/chat/completions", json={**chat("x"), "model": "coder"})
            assert r.status_code == 503 and r.headers["retry-after"]


async def test_ready_and_models(router: Any) -> None:
    c, _ = router
    r = await c.get("/ready")
    assert r.status_code == 200 and r.json()["deployments"] == {"general": 1, "coder": 1, "moe": 1}
    ids = [m["id"] for m in (await c.get("/v1/models")).json()["data"]]
    assert ids[:3] == ["general", "coder", "moe"] and "auto" in ids and "qwen-code" in ids


async def test_metrics_have_bounded_labels(router: Any) -> None:
    c, _ = router
    await c.post("/v1/chat/completions", json={**chat("x"), "model": "no-such-model-" + "z" * 20})
    text = (await c.get("/metrics")).text
    assert "no-such-model" not in text
    assert 'qwen_router_rejections_total{reason="not_found"}' in text
