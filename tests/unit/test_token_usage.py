"""Token charges settled with real usage: the TokenCharge unit, and the router settling against FAKE engines
(non-streamed, streamed with and without a usage chunk, an engine error)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from serve.config import FleetConfig
from serve.security.guard import estimate_prompt_tokens
from serve.security.ratelimit import RateLimiter, duration_text
from serve.security.usage import TokenCharge
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict

KEY, RPM_KEY = "sk-usage-test-0001", "sk-usage-rpm-0002"
TPM = 6000


class Recorder:
    """A limiter stand-in recording corrections."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def correct_tokens(self, key: str, charged: int, actual: int) -> None:
        self.calls.append((key, charged, actual))


def _charge(charged: int = 300, prompt: int = 20) -> tuple[TokenCharge, Recorder]:
    rec = Recorder()
    return TokenCharge(rec, "k", charged, prompt), rec


def test_settle_once_and_keep_estimate_when_unknown() -> None:
    c, rec = _charge()
    c.settle(120)
    c.settle(0)  # later settlements are ignored
    assert rec.calls == [("k", 300, 120)]
    c, rec = _charge()
    c.settle_body(b"not json")
    c.settle_body(b'{"usage": {"total_tokens": 5}}')  # already settled (estimate kept)
    assert rec.calls == []


def test_settle_body_total_or_parts() -> None:
    c, rec = _charge()
    c.settle_body(b'{"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 12}}')
    assert rec.calls == [("k", 300, 42)]


def test_settle_stream_uses_the_usage_chunk_even_split_across_chunks() -> None:
    c, rec = _charge()
    events = [b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n']
    events += [b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'] * 3
    events += [b'data: {"choices":[],"usage":{"prompt_tokens":9,"total_tokens":12,"completion_tokens":3}}\n\n',
               b"data: [DONE]\n\n"]
    stream = b"".join(events)
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        c.feed(stream[i:i + 7])
    c.settle_stream()
    assert rec.calls == [("k", 300, 12)]


def test_settle_stream_without_usage_counts_content_events() -> None:
    c, rec = _charge(prompt=20)
    c.feed(b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n')
    for _ in range(5):
        c.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    c.feed(b"data: [DONE]\n\n")
    c.settle_stream()
    assert rec.calls == [("k", 300, 20 + 5)]


# --- the router settling real relayed answers -----------------------------------------------------
@pytest.fixture
def usage_fleet(monkeypatch: pytest.MonkeyPatch) -> FleetConfig:
    monkeypatch.setenv("USAGE_KEYS", f"usage:{KEY},rpm:{RPM_KEY}")
    data = fleet_dict()
    data["security"] = {"require_api_key": True, "api_keys_env": "USAGE_KEYS",
                        "rate_limit": {"per_key": {"usage": {"tokens_per_minute": TPM},
                                                   "rpm": {"requests_per_minute": 1}}}}
    return FleetConfig.from_dict(data)


@pytest.fixture
def failing_engine() -> Iterator[FakeEngineServer]:
    e = FakeEngineServer("general", ttft_s=0.001, tokens_per_s=2000.0, error_rate=1.0)
    yield e
    e.stop()


def _router(fleet: FleetConfig, urls: Any) -> Any:
    return make_router(fleet, urls, client=("10.0.0.7", 1234), headers={"authorization": f"Bearer {KEY}"})


def _level(app: Any) -> float:
    return float(app.state.service.guard.limiter.buckets("usage").tokens.level)


def _body(**kw: Any) -> dict[str, Any]:
    return {"model": "general", "messages": [{"role": "user", "content": "count to ten"}], "max_tokens": 500, **kw}


async def test_router_settles_with_usage(fake_engines: dict[str, FakeEngineServer], usage_fleet: FleetConfig) -> None:
    async with _router(usage_fleet, {n: e.url for n, e in fake_engines.items()}) as (c, app):
        full = _level(app)
        r = await c.post("/v1/chat/completions", json=_body(max_tokens=40, ignore_eos=True))
        assert r.status_code == 200
        used = r.json()["usage"]["total_tokens"]
        assert used < 40 + estimate_prompt_tokens(_body()) + 20  # far below the 500-token budget charged
        # refill during the test is at most TPM/60 tokens per second
        assert full - used - 1 <= _level(app) <= full - used + 20

        before = _level(app)
        body = _body(max_tokens=30, ignore_eos=True, stream=True, stream_options={"include_usage": True})
        async with c.stream("POST", "/v1/chat/completions", json=body) as s:
            lines = [ln async for ln in s.aiter_lines() if ln.startswith("data: {")]
        usage = json.loads(lines[-1][6:])["usage"]["total_tokens"]
        assert before - usage - 1 <= _level(app) <= before - usage + 20

        before = _level(app)
        body = _body(max_tokens=30, ignore_eos=True, stream=True)
        async with c.stream("POST", "/v1/chat/completions", json=body) as s:
            lines = [ln async for ln in s.aiter_lines() if ln.startswith("data: {")]
        assert not any('"usage"' in ln for ln in lines)
        # no usage chunk: the prompt estimate + one token per event after the role-only first one
        expected = estimate_prompt_tokens(body) + len(lines) - 1
        assert len(lines) - 1 >= 30
        assert before - expected - 1 <= _level(app) <= before - expected + 20


async def test_router_gives_tokens_back_on_engine_error(failing_engine: FakeEngineServer,
                                                       fake_engines: dict[str, FakeEngineServer],
                                                       usage_fleet: FleetConfig) -> None:
    urls = {n: [e.url] for n, e in fake_engines.items()}
    urls["general"] = [failing_engine.url]
    async with _router(usage_fleet, urls) as (c, app):
        full = _level(app)
        r = await c.post("/v1/chat/completions", json=_body(max_tokens=2000))
        assert r.status_code >= 500 and r.json()["error"]["code"] == "engine_error"
        assert _level(app) >= full - 1  # the 2,000-token charge was given back


# --- x-ratelimit-* headers (OpenAI's names) ----------------------------------------------------------
def test_duration_text() -> None:
    assert [duration_text(x) for x in (0, -1, 0.2504, 1.0, 12.2, 360.0, 61.5)] == [
        "0s", "0s", "250ms", "1s", "13s", "6m0s", "1m2s"]


def test_limiter_headers_describe_only_the_keys_limits() -> None:
    t = [1000.0]
    rl = RateLimiter(tokens_per_minute=60, per_key={"r": (10, None)}, clock=lambda: t[0])
    assert rl.take_tokens("anon", 30) is None
    assert rl.headers("anon") == {"x-ratelimit-limit-tokens": "60", "x-ratelimit-remaining-tokens": "30",
                                  "x-ratelimit-reset-tokens": "30s"}
    t[0] += 10.0  # refills 10 tokens
    assert rl.headers("anon")["x-ratelimit-remaining-tokens"] == "40"
    assert set(rl.headers("r")) == {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                    "x-ratelimit-reset-requests"}


async def test_router_sends_ratelimit_headers(fake_engines: dict[str, FakeEngineServer],
                                             usage_fleet: FleetConfig) -> None:
    async with _router(usage_fleet, {n: e.url for n, e in fake_engines.items()}) as (c, app):
        r = await c.post("/v1/chat/completions", json=_body(max_tokens=10))
        assert r.status_code == 200 and r.headers["x-ratelimit-limit-tokens"] == str(TPM)
        assert TPM - 600 < int(r.headers["x-ratelimit-remaining-tokens"]) < TPM  # settled: the real usage
        assert "x-ratelimit-limit-requests" not in r.headers  # this key has no request limit
        rpm = {"authorization": f"Bearer {RPM_KEY}"}
        assert (await c.post("/v1/chat/completions", json=_body(max_tokens=2), headers=rpm)).status_code == 200
        refused = await c.post("/v1/chat/completions", json=_body(max_tokens=2), headers=rpm)
        assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-limit-requests"] == "1" and refused.headers["retry-after"]
        assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
