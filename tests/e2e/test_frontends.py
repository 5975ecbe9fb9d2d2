"""Engine frontends on the real stack: ``qwen-coder`` runs ``engine_frontends: 2`` (tests/e2e/fleet.py).

Real vLLM (CPU) under Ray Serve: the replica's engine takes two more engine clients, each a vLLM OpenAI-server
process of its own; the router spreads streams over them; the replica's health check covers them, so a killed
frontend makes Ray Serve replace the replica. Run against another stack with ``QWEN_SERVE_E2E_URL`` (it needs
a ``qwen-coder`` deployment with two frontends).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import psutil
import pytest

from serve.security.engine_secret import HEADER
from tests.e2e.fleet import ENGINE_SECRET, FRONTENDS, SMALL

pytestmark = pytest.mark.e2e


def _endpoint(http: httpx.Client) -> dict[str, Any]:
    eps = http.get("/v1/status").json()["endpoints"][SMALL]
    assert len(eps) == 1
    return dict(eps[0])


def _served(url: str) -> float:
    """Requests a frontend finished (vLLM's own Prometheus counter of that process)."""
    # The frontends sit behind the engine gate like the replica's own app: the test sends the engine secret.
    text = httpx.get(url + "/metrics", timeout=30, headers={HEADER: ENGINE_SECRET}).text
    return sum(float(v) for v in re.findall(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def _ask(client: Any, i: int) -> int:
    kw: dict[str, Any] = {"model": SMALL, "messages": [{"role": "user", "content": f"frontend test {i}"}],
                          "max_tokens": 6, "extra_body": {"ignore_eos": True}}
    if i % 2:
        return int(client.chat.completions.create(**kw).usage.completion_tokens)
    usage = None
    for chunk in client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
    assert usage is not None
    return int(usage.completion_tokens)


def test_the_router_spreads_streams_over_the_replicas_frontends(client, http) -> None:  # type: ignore[no-untyped-def]
    ep = _endpoint(http)
    assert len(ep["urls"]) == FRONTENDS and ep["url"] not in ep["urls"], ep
    before = [_served(u) for u in ep["urls"]]
    assert [_ask(client, i) for i in range(2 * FRONTENDS)] == [6] * (2 * FRONTENDS)
    after = [_served(u) for u in ep["urls"]]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2.0] * FRONTENDS, "round robin per replica"


def test_engine_stats_count_what_every_frontend_sent(client, http) -> None:  # type: ignore[no-untyped-def]
    start = (_endpoint(http)["engine"] or {}).get("prefix_requests", 0)
    sent = 2 * FRONTENDS
    for i in range(sent):
        _ask(client, 100 + i)
    deadline = time.monotonic() + 30
    seen = start
    while time.monotonic() < deadline:
        seen = (_endpoint(http)["engine"] or {}).get("prefix_requests", 0)
        if seen - start >= sent:
            break
        time.sleep(1)
    assert seen - start >= sent, f"the replica's stats saw {seen - start} of {sent} requests"


def test_a_dead_frontend_fails_the_health_check_and_ray_serve_replaces_the_replica(client, http) -> None:  # type: ignore[no-untyped-def]
    old = _endpoint(http)
    victims = [p for p in psutil.process_iter(["pid", "cmdline"])
               if " ".join(p.info["cmdline"] or []).startswith(f"qwen-frontend:{SMALL}:")]
    assert victims, "no frontend process of the deployment on this machine"
    victims[0].kill()
    deadline = time.monotonic() + 420
    new = old
    while time.monotonic() < deadline:
        try:
            eps = http.get("/v1/status").json()["endpoints"].get(SMALL, [])
        except httpx.HTTPError:
            eps = []
        if eps and eps[0]["replica"] != old["replica"] and len(eps[0]["urls"]) == FRONTENDS:
            new = eps[0]
            break
        time.sleep(3)
    assert new["replica"] != old["replica"], "Ray Serve did not replace the replica"
    assert not set(new["urls"]) & set(old["urls"])
    assert _ask(client, 7) == 6
