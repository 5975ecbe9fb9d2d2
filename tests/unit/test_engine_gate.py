"""The engine gate (secret check before vLLM, in-flight count), the engine secret and the draining record."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from serve.engine_gate import EngineGate, InflightCounter
from serve.engine_record import EngineRecord
from serve.security import engine_secret
from serve.security.engine_secret import HEADER

SECRET = "unit-engine-secret"


def fake_app(seen: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


async def test_refuses_without_or_with_a_wrong_secret_before_the_app() -> None:
    seen: list[str] = []
    gate = EngineGate(fake_app(seen), SECRET, InflightCounter())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://engine") as c:
        for headers in ({}, {HEADER: "wrong"}, {HEADER: ""}, {"authorization": f"Bearer {SECRET}"}):
            r = await c.post("/v1/chat/completions", json={"n": 50}, headers=headers)
            assert r.status_code == 401
            err = r.json()["error"]
            assert err["type"] == "authentication_error" and err["code"] == "engine_secret_required"
            assert SECRET not in r.text
        assert seen == []  # vLLM never saw them
        r = await c.post("/v1/chat/completions", json={}, headers={HEADER: SECRET})
        assert r.status_code == 200 and seen == ["/v1/chat/completions"]


async def test_no_secret_loaded_refuses_everything_and_auth_off_lets_through() -> None:
    seen: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=EngineGate(fake_app(seen), None,
                                                                              InflightCounter())),
                                 base_url="http://engine") as c:
        assert (await c.get("/v1/models", headers={HEADER: ""})).status_code == 401
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=EngineGate(fake_app(seen), None, InflightCounter(), require_secret=False)),
            base_url="http://engine") as c:
        assert (await c.get("/v1/models")).status_code == 200


def test_counts_a_stream_in_flight_until_its_last_byte() -> None:
    import threading

    from tests.unit.conftest import AppServer

    gate_open = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        while not gate_open.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"last"})

    counter = InflightCounter()
    server = AppServer(EngineGate(app, SECRET, counter))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c, \
                c.stream("POST", "/v1/completions", headers={HEADER: SECRET}) as r:
            it = r.iter_raw()
            assert next(it) == b"first"
            assert counter.count == 1  # the stream is in flight
            gate_open.set()
            assert b"".join(it) == b"last"
        for _ in range(100):
            if counter.count == 0:
                break
            threading.Event().wait(0.02)
        assert counter.count == 0 and counter.total == 1
        assert asyncio.run(counter.wait_idle(quiet_s=0.05, timeout_s=2.0, poll_s=0.02))
    finally:
        server.stop()


def test_secret_comparison_and_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_secret.matches(SECRET, SECRET) and engine_secret.matches(SECRET.encode(), SECRET)
    assert not engine_secret.matches(None, SECRET) and not engine_secret.matches("x", SECRET)
    assert not engine_secret.matches(SECRET, "")
    a, b = engine_secret.generate(), engine_secret.generate()
    assert a != b and len(a) >= 40
    monkeypatch.setenv(engine_secret.ENV, "from-a-kubernetes-secret")
    assert engine_secret.load() == "from-a-kubernetes-secret"  # no Ray needed when the env provides it
    monkeypatch.setenv(engine_secret.ENV, "  ")
    assert engine_secret.from_env() is None


def test_draining_travels_in_the_record_and_old_records_parse() -> None:
    rec = EngineRecord(deployment="m", replica="r1", url="http://10.0.0.1:1234", draining=True)
    back = EngineRecord.from_json(rec.to_json())
    assert back is not None and back.draining and "draining" not in back.extra
    plain = EngineRecord.from_json(EngineRecord(deployment="m", replica="r2", url="http://x").to_json())
    assert plain is not None and not plain.draining


def test_registry_skips_draining_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve import engine_record
    from serve.router.upstream import _read_kv

    recs = [EngineRecord(deployment="m", replica="r1", url="http://a"),
            EngineRecord(deployment="m", replica="r2", url="http://b", draining=True)]
    monkeypatch.setattr(engine_record, "read_records", lambda: recs)
    urls, _, _ = _read_kv()
    assert urls == {"m": {"r1": "http://a"}}
