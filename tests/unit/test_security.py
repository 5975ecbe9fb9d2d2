"""serve.security: key store, token buckets, per-key limiter, and the guard inside the router app."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from serve.config import FleetConfig
from serve.security import (
    Guard,
    KeyStore,
    KeyStoreError,
    RateLimiter,
    TokenBucket,
    bearer_token,
    parse_entries,
)
from serve.security.guard import estimate_tokens
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict

ALICE, BOB, TINY = "sk-alice-0123456789", "sk-bob-9876543210", "sk-tiny-tokens-000"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- keys -------------------------------------------------------------------------------------------
def test_parse_entries_names_hashes_and_skips_comments() -> None:
    entries = parse_entries(["alice:" + ALICE, "  ", "# comment", BOB])
    assert [n for n, _ in entries][0] == "alice"
    assert entries[1][0].startswith("key-") and len(entries[1][0]) == 12
    assert all(len(d) == 32 for _, d in entries)
    assert all(ALICE.encode() not in d and BOB.encode() not in d for _, d in entries)


@pytest.mark.parametrize("bad", [":secret", "name:", "x" * 600])
def test_parse_entries_rejects_malformed(bad: str) -> None:
    with pytest.raises(KeyStoreError):
        parse_entries([bad])


def test_keystore_from_env_and_file(tmp_path: Any) -> None:
    f = tmp_path / "keys"
    f.write_text(f"# team keys\nbob:{BOB}\n")
    store = KeyStore.from_sources("K", f, environ={"K": f"alice:{ALICE}, ,"})
    assert len(store) == 2 and store.names() == ["alice", "bob"]
    assert store.lookup(ALICE) == "alice" and store.lookup(BOB) == "bob"
    assert store.lookup(ALICE[:-1]) is None and store.lookup("") is None and store.lookup("y" * 10_000) is None
    assert ALICE not in repr(vars(store))


def test_keystore_missing_file_is_an_error(tmp_path: Any) -> None:
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore.from_sources(None, tmp_path / "nope")


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer   abc ", "abc"), ("Basic abc", None), ("Bearer ", None), (None, None),
    ("abc", None),
])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


# --- token buckets ----------------------------------------------------------------------------------
def test_token_bucket_burst_refill_and_wait() -> None:
    clock = FakeClock()
    b = TokenBucket.per_minute(60, clock)  # 1 per second, burst 60
    assert all(b.try_take() == 0.0 for _ in range(60))
    assert b.try_take() == pytest.approx(1.0)
    clock.t += 0.5
    assert b.try_take() == pytest.approx(0.5)
    clock.t += 0.5
    assert b.try_take() == 0.0
    clock.t += 10_000
    assert b.level == 60  # never above capacity
    assert math.isinf(b.try_take(61))


def test_token_bucket_ignores_clock_going_back_and_corrections() -> None:
    clock = FakeClock()
    b = TokenBucket(10, 1, clock)
    b.try_take(10)
    clock.t -= 100
    assert b.level == 0
    b.give_back(4)
    assert b.level == 4
    b.force_take(100)
    assert b.level == -10  # debt is bounded by the capacity


def test_rate_limiter_per_key_overrides_and_retry_after() -> None:
    clock = FakeClock()
    rl = RateLimiter(requests_per_minute=100, per_key={"tiny": (2, 30)}, clock=clock)
    assert rl.take_request("tiny") is None and rl.take_request("tiny") is None
    refusal = rl.take_request("tiny")
    assert refusal is not None and refusal.limit == "requests" and refusal.retry_after == pytest.approx(30)
    assert rl.take_request("other") is None  # its own bucket
    assert rl.take_tokens("other", 10**6) is None  # default has no token limit
    assert rl.take_tokens("tiny", 20) is None
    r = rl.take_tokens("tiny", 20)
    assert r is not None and r.limit == "tokens" and r.retry_after == pytest.approx(20)
    assert math.isinf(rl.take_tokens("tiny", 31).retry_after)  # type: ignore[union-attr]


def test_rate_limiter_forgets_least_recent_keys() -> None:
    rl = RateLimiter(requests_per_minute=1, max_keys=3)
    for k in ("a", "b", "c", "d"):
        rl.take_request(k)
    assert "a" not in rl._buckets and len(rl._buckets) == 3


def test_empty_token_bucket_refuses_before_parsing() -> None:
    clock = FakeClock()
    rl = RateLimiter(tokens_per_minute=60, clock=clock)
    rl.take_tokens("k", 60)
    r = rl.take_request("k")
    assert r is not None and r.limit == "tokens" and r.retry_after == pytest.approx(1.0)


def test_estimate_tokens_counts_prompt_budget_and_n() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 10, "n": 2}
    assert 100 < estimate_tokens(body, 256) - 20 < 120
    assert estimate_tokens({"prompt": [1, 2, 3]}, 5) == 8


# --- the guard in the router app --------------------------------------------------------------------
@pytest.fixture
def secure_fleet(monkeypatch: pytest.MonkeyPatch) -> FleetConfig:
    monkeypatch.setenv("UNIT_KEYS", f"alice:{ALICE},{BOB},tiny:{TINY}")
    data = fleet_dict()
    data["security"] = {
        "require_api_key": True, "api_keys_env": "UNIT_KEYS", "metrics_public": False,
        "rate_limit": {"per_key": {"alice": {"requests_per_minute": 2},
                                   "tiny": {"tokens_per_minute": 300}}},
        "limits": {"max_body_bytes": 4096},
    }
    return FleetConfig.from_dict(data)


@pytest.fixture
async def router(fake_engines: dict[str, FakeEngineServer],
                 secure_fleet: FleetConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with make_router(secure_fleet, {n: e.url for n, e in fake_engines.items()},
                           client=("10.0.0.9", 1234)) as (c, _):
        yield c


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def chat(content: str = "hello", **kw: Any) -> dict[str, Any]:
    return {"model": "general", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **kw}


def _openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= set(err)
    return err


async def test_missing_and_wrong_keys_are_401(router: httpx.AsyncClient) -> None:
    err = _openai_error(await router.post("/v1/chat/completions", json=chat()), 401)
    assert err["type"] == "authentication_error" and err["code"] == "missing_api_key"
    err = _openai_error(await router.post("/v1/chat/completions", json=chat(), headers=auth("sk-wrong")), 401)
    assert err["code"] == "invalid_api_key"
    for path in ("/v1/models", "/v1/models/general", "/metrics"):
        assert (await router.get(path)).status_code == 401, path
    assert (await router.post("/v1/route", json=chat())).status_code == 401


async def test_valid_keys_pass_and_health_is_open(router: httpx.AsyncClient) -> None:
    assert (await router.post("/v1/chat/completions", json=chat(), headers=auth(BOB))).status_code == 200
    assert (await router.get("/v1/models", headers=auth(BOB))).status_code == 200
    assert (await router.get("/metrics", headers=auth(BOB))).status_code == 200
    assert (await router.get("/health")).status_code == 200
    assert (await router.get("/ready")).status_code == 200


async def test_request_rate_limit_is_429_with_retry_after(router: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await router.post("/v1/chat/completions", json=chat(), headers=auth(ALICE))).status_code == 200
    r = await router.post("/v1/chat/completions", json=chat(), headers=auth(ALICE))
    err = _openai_error(r, 429)
    assert err["type"] == "rate_limit_error" and 1 <= int(r.headers["retry-after"]) <= 30
    # /v1/route checks the key but does not count; other keys have their own buckets
    assert (await router.post("/v1/route", json=chat(), headers=auth(ALICE))).status_code == 200
    assert (await router.post("/v1/chat/completions", json=chat(), headers=auth(BOB))).status_code == 200


async def test_token_rate_limit(router: httpx.AsyncClient) -> None:
    # ignore_eos: the answer really uses its 200 tokens (charges are settled with the real usage)
    ok = await router.post("/v1/chat/completions", json=chat(max_tokens=200, ignore_eos=True), headers=auth(TINY))
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 200
    r = await router.post("/v1/chat/completions", json=chat(max_tokens=200), headers=auth(TINY))
    assert _openai_error(r, 429)["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
    r = await router.post("/v1/chat/completions", json=chat(max_tokens=1000), headers=auth(TINY))
    assert _openai_error(r, 429)["code"] == "tokens_exceed_limit"


async def test_body_limit_by_content_length_and_by_bytes(router: httpx.AsyncClient) -> None:
    big = chat("x" * 10_000)
    err = _openai_error(await router.post("/v1/chat/completions", json=big, headers=auth(BOB)), 413)
    assert err["code"] == "request_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    r = await router.post("/v1/chat/completions", content=chunks(),
                          headers={**auth(BOB), "content-type": "application/json"})
    _openai_error(r, 413)
    assert r.headers.get("x-request-id")
    r = await router.post("/v1/chat/completions", content=b"{}",
                          headers={**auth(BOB), "content-length": "abc"})
    assert r.status_code == 400


async def test_request_timeout_header_gives_408(fake_engines: dict[str, FakeEngineServer],
                                                secure_fleet: FleetConfig) -> None:
    slow = FakeEngineServer("general", ttft_s=3.0, tokens_per_s=10.0)
    try:
        urls = {"general": slow.url, "coder": fake_engines["coder"].url, "moe": fake_engines["moe"].url}
        async with make_router(secure_fleet, urls) as (c, app):
            r = await c.post("/v1/chat/completions", json=chat(),
                             headers={**auth(BOB), "x-request-timeout": "0.2"})
            assert _openai_error(r, 408)["type"] == "timeout_error"
            assert app.state.service.registry.load("general").ongoing == 0  # the slot was given back
    finally:
        slow.stop()


@pytest.fixture
def captured() -> Iterator[list[str]]:
    lines: list[str] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    h = H(level=logging.DEBUG)
    lg = logging.getLogger("serve")
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.DEBUG)
    yield lines
    lg.removeHandler(h)
    lg.setLevel(old)


async def test_logs_never_hold_prompt_text_or_keys(router: httpx.AsyncClient, captured: list[str]) -> None:
    secret_prompt = "my-private-prompt-7f3a9"
    await router.post("/v1/chat/completions", json=chat(secret_prompt), headers=auth(ALICE))
    await router.post("/v1/chat/completions", json=chat(secret_prompt), headers=auth("sk-leaky-wrong-key"))
    await router.post("/v1/chat/completions", json=chat(secret_prompt, stream=True), headers=auth(BOB))
    await router.post("/v1/chat/completions", json=chat(secret_prompt, temperature=9), headers=auth(BOB))
    text = "\n".join(captured)
    assert "prompt_hash=" in text
    assert captured and all("request_id=" in line for line in captured), captured
    for secret in (secret_prompt, ALICE, BOB, "sk-leaky-wrong-key"):
        assert secret not in text


def test_guard_from_fleet_without_keys_limits_by_address() -> None:
    fleet = FleetConfig.from_dict({**fleet_dict(), "security": {"rate_limit": {"requests_per_minute": 1}}})
    guard = Guard.from_fleet(fleet)
    assert not guard.require_key and guard.limiter.enabled

    class Req:
        headers: dict[str, str] = {}
        client = type("C", (), {"host": "1.2.3.4"})()
        state = type("S", (), {})()

    assert guard.authenticate(Req()) == "ip:1.2.3.4"  # type: ignore[arg-type]
