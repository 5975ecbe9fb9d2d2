"""Scale from zero in the router over FAKE engines: held requests, waking, bounds, warm siblings, readiness."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from serve.config import FleetConfig
from serve.router.app import create_app
from serve.router.upstream import StaticRegistry
from tests.unit.conftest import FakeEngineServer, fleet_dict

COLD = "moe"


def cold_fleet(**cold_start: Any) -> FleetConfig:
    data = fleet_dict(cold_start={"keepalive_s": 0.1, "retry_after_s": 7, **cold_start},
                      aliases={"auto": None, "qwen-reasoning": "reasoning"})
    for dep in data["deployments"]:
        if dep["name"] == COLD:
            dep["autoscaling"] = {"min_replicas": 0, "max_replicas": 1}
    return FleetConfig.from_dict(data, check_paths=False)


class Waker:
    """Stands in for the handle call: after ``delay_s`` the replica's record appears (or never)."""

    def __init__(self, registry: StaticRegistry, url: str, delay_s: float = 0.3, never: bool = False) -> None:
        self.registry, self.url, self.delay_s, self.never = registry, url, delay_s, never
        self.calls: list[str] = []

    async def __call__(self, name: str) -> None:
        self.calls.append(name)
        if self.never:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay_s)
        self.registry._urls[name] = {"r0": self.url}


@pytest.fixture
async def cold_router(fake_engines: dict[str, FakeEngineServer], request: pytest.FixtureRequest,
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Waker]]:
    opts = getattr(request, "param", {})
    urls = {n: [e.url] for n, e in fake_engines.items() if n != COLD}
    registry = StaticRegistry(urls)
    waker = Waker(registry, fake_engines[COLD].url.rstrip("/"), never=opts.get("never", False))
    app = create_app(cold_fleet(**opts.get("cold_start", {})), registry, waker=waker, refresh_interval_s=0.1)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router") as c:
        yield c, app, waker


def chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4, **kw}


async def test_scaled_to_zero_is_ready_and_shown(cold_router: Any) -> None:
    c, _, waker = cold_router
    r = await c.get("/ready")
    assert r.status_code == 200 and r.json()["scaled_to_zero"] == [COLD] and r.json()["deployments"][COLD] == 0
    status = (await c.get("/v1/status")).json()
    assert status["cold_start"][COLD]["scaled_to_zero"] is True
    assert status["autoscaling"][COLD]["replicas"] == 0 and status["autoscaling"][COLD]["min_replicas"] == 0
    assert 'qwen_router_scaled_to_zero{model="moe"} 1.0' in (await c.get("/metrics")).text
    assert waker.calls == []  # nothing wakes it without a request


async def test_held_request_is_answered_once_a_replica_registers(cold_router: Any) -> None:
    c, _, waker = cold_router
    r = await c.post("/v1/chat/completions", json=chat(COLD))
    assert r.status_code == 200, r.text
    assert r.json()["model"] == COLD and "scaled to zero" in r.headers["x-qwen-route-reason"]
    assert waker.calls == [COLD]
    status = (await c.get("/v1/status")).json()["cold_start"][COLD]
    assert status["scaled_to_zero"] is False and status["cold_starts"] == 1 and status["held"] == 0
    last = status["last_cold_start"]
    assert 0 < last["ready_s"] <= last["first_token_s"]
    assert 'qwen_router_cold_starts_total{model="moe"} 1.0' in (await c.get("/metrics")).text
    r = await c.post("/v1/chat/completions", json=chat(COLD))  # warm now: no new episode
    assert r.status_code == 200 and "scaled to zero" not in r.headers["x-qwen-route-reason"]
    assert (await c.get("/v1/status")).json()["cold_start"][COLD]["cold_starts"] == 1


async def test_held_stream_gets_sse_comments_then_the_engine_stream(cold_router: Any) -> None:
    c, _, _ = cold_router
    r = await c.post("/v1/chat/completions", json=chat(COLD, stream=True))
    assert r.status_code == 200 and r.headers["x-qwen-cold-start"] == "held"
    lines = [line for line in r.text.split("\n") if line]
    assert lines[0].startswith(": waiting for a replica of moe")
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and all(json.loads(d)["model"] == COLD for d in data[:-1])
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data: "))
    assert all(line.startswith(":") for line in lines[:first_data])


@pytest.mark.parametrize("cold_router", [{"never": True}], indirect=True)
async def test_held_past_its_deadline_is_a_503_with_retry_after(cold_router: Any) -> None:
    c, _, _ = cold_router
    r = await c.post("/v1/chat/completions", json=chat(COLD), headers={"x-request-timeout": "0.5"})
    assert r.status_code == 503 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "cold_start_timeout"
    r = await c.post("/v1/chat/completions", json=chat(COLD, stream=True), headers={"x-request-timeout": "0.5"})
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert json.loads(events[0])["error"]["code"] == "cold_start_timeout" and events[-1] == "[DONE]"
    assert 'qwen_router_held_expired_total{bound="time",model="moe"} 2.0' in (await c.get("/metrics")).text


@pytest.mark.parametrize("cold_router", [{"never": True, "cold_start": {"max_held_requests": 1}}], indirect=True)
async def test_held_requests_are_bounded_in_number(cold_router: Any) -> None:
    c, _, _ = cold_router
    first = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat(COLD),
                                         headers={"x-request-timeout": "2"}))
    await asyncio.sleep(0.3)
    r = await c.post("/v1/chat/completions", json=chat(COLD))
    assert r.status_code == 503 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "cold_start_queue_full"
    assert (await first).status_code == 503


async def test_warm_sibling_serves_a_virtual_model_and_says_so(cold_router: Any) -> None:
    c, _, waker = cold_router
    # task reasoning: candidates [moe, general]; moe is scaled to zero, general is warm.
    r = await c.post("/v1/chat/completions", json=chat("qwen-reasoning"))
    assert r.status_code == 200, r.text
    assert r.headers["x-qwen-task"] == "reasoning" and r.headers["x-qwen-model"] == "general"
    assert "moe:scaled_to_zero (waking)" in r.headers["x-qwen-route-reason"]
    assert "warm sibling general" in r.headers["x-qwen-route-reason"]
    await asyncio.sleep(0.5)
    assert waker.calls == [COLD]  # the cold candidate is woken for the demand anyway
    r = await c.post("/v1/chat/completions", json=chat("qwen-reasoning"))
    assert r.headers["x-qwen-model"] == COLD  # awake now: the first candidate serves again


@pytest.mark.parametrize("cold_router", [{"cold_start": {"spill_to_warm": False}}], indirect=True)
async def test_without_spill_a_virtual_model_waits_for_its_first_candidate(cold_router: Any) -> None:
    c, _, _ = cold_router
    r = await c.post("/v1/chat/completions", json=chat("qwen-reasoning"))
    assert r.status_code == 200 and r.headers["x-qwen-model"] == COLD
    assert "held while a replica starts" in r.headers["x-qwen-route-reason"]


async def test_capability_errors_are_not_held(cold_router: Any) -> None:
    c, _, waker = cold_router
    body = chat(COLD)
    body["messages"][0]["content"] = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    r = await c.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and waker.calls == []


async def test_the_hold_counts_against_the_requests_own_deadline() -> None:
    # A 1 s deadline: held 0.6 s for the replica, then an engine that needs 0.8 s to answer. The request's
    # deadline runs from its arrival, so the answer is the router's timeout (408), not a 200 after 1.4 s.
    from tests.unit.conftest import FakeEngineServer as Fake

    slow = Fake(COLD, ttft_s=0.8, tokens_per_s=2000.0)
    fast = {n: Fake(n, ttft_s=0.002, tokens_per_s=2000.0) for n in ("general", "coder")}
    try:
        registry = StaticRegistry({n: [e.url] for n, e in fast.items()})
        waker = Waker(registry, slow.url.rstrip("/"), delay_s=0.6)
        app = create_app(cold_fleet(), registry, waker=waker, refresh_interval_s=0.1)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://router", timeout=10) as c:
            r = await c.post("/v1/chat/completions", json=chat(COLD), headers={"x-request-timeout": "1.0"})
            assert r.status_code == 408, r.text  # the router's timeout answer
            assert r.json()["error"]["code"] == "timeout"
            # warm now: the same deadline is enough for the engine alone
            r = await c.post("/v1/chat/completions", json=chat(COLD), headers={"x-request-timeout": "1.0"})
            assert r.status_code == 200, r.text
    finally:
        for e in (slow, *fast.values()):
            e.stop()
