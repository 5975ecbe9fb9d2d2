"""The stack on a real multi-node Ray cluster (one machine): placement, rolling update, GCS restart, Serve
controller restart, node loss, and ``down`` leaving the cluster alone.

Ordered: each test leaves the stack serving for the next. Waits are bounded polls; speed figures are in
``bench/multinode/run.py``, never asserted here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlparse

import httpx
import pytest

from bench.multinode.load import Load, summarize
from tests.multinode.conftest import ClusterStack, cli
from tests.multinode.fleet import EXTRA, MODEL

pytestmark = pytest.mark.e2e

WORKER_IPS = {"127.0.0.2", "127.0.0.3", "127.0.0.4"}


def _status(url: str) -> dict[str, list[dict[str, object]]]:
    r = httpx.get(url + "/v1/status", timeout=10)
    r.raise_for_status()
    return dict(r.json()["endpoints"])


def _replicas(url: str, model: str = MODEL) -> dict[str, str]:
    """``{replica id: engine host}`` of a deployment as the router sees it."""
    return {str(e["replica"]): str(urlparse(str(e["url"])).hostname) for e in _status(url).get(model, [])}


def _poll(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(1.0)
    pytest.fail(f"not within {timeout_s:.0f}s: {what}")


def _chat(url: str, model: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=120, json={
        "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})


def test_engines_on_workers_router_on_head(cluster_stack: ClusterStack) -> None:
    """Placement follows the fleet: one engine replica per engine-pool worker node, the router on the head;
    the router relays to the engines' own node addresses."""
    from openai import OpenAI

    replicas = _replicas(cluster_stack.url)
    assert len(replicas) == 2 and set(replicas.values()) <= WORKER_IPS
    assert len(set(replicas.values())) == 2, replicas  # engine-pool: 1 per node -> two different nodes
    routers = cluster_stack.cluster.actors("ServeReplica:qwen-serve:router")
    assert [r["ip"] for r in routers] == [cluster_stack.cluster.head_ip()], routers
    client = OpenAI(base_url=cluster_stack.url + "/v1", api_key="none", max_retries=0, timeout=120)
    served = set()
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert raw.parse().choices[0].message is not None
        served.add(raw.headers["x-qwen-replica"])
    assert served == set(replicas), served  # both cross-node replicas answer


@pytest.mark.slow
def test_rolling_update_adds_and_removes_without_failures(cluster_stack: ClusterStack) -> None:
    """``up`` with a changed fleet on the running stack: a deployment (and an alias) added, later removed.
    The unchanged deployment keeps its replicas and every request to it succeeds throughout."""
    before = _replicas(cluster_stack.url)
    load = Load(cluster_stack.url, MODEL, concurrency=3, max_tokens=32).start()
    try:
        added = cluster_stack.up(extra=True)
        assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
        assert "updating in place" in added.stdout
        assert _chat(cluster_stack.url, EXTRA).status_code == 200
        assert _chat(cluster_stack.url, "qwen-extra").headers["x-qwen-model"] == EXTRA  # the router's new alias
        removed = cluster_stack.up(extra=False)
        assert removed.returncode == 0, removed.stdout[-2000:] + removed.stderr[-2000:]
        # `up` returns once the new fleet is live: the removed deployment is unknown at once.
        assert _chat(cluster_stack.url, EXTRA).status_code == 404
    finally:
        outcomes = load.stop()
    summary = summarize(outcomes)
    assert summary["requests"] > 0 and summary["failed"] == 0, summary
    assert _replicas(cluster_stack.url) == before  # the unchanged engines were never restarted


def test_gcs_restart_keeps_serving(cluster_stack: ClusterStack) -> None:
    """Kill the GCS under load and start it again (Redis-backed): the data path never goes through Ray, so
    no request fails; afterwards the cluster and the stack are whole again without a manual step."""
    load = Load(cluster_stack.url, MODEL, concurrency=3, max_tokens=32).start()
    try:
        time.sleep(3)
        cluster_stack.cluster.kill_gcs()
        time.sleep(8)
        cluster_stack.cluster.restart_gcs()
        time.sleep(8)
    finally:
        outcomes = load.stop()
    summary = summarize(outcomes)
    assert summary["requests"] > 0 and summary["failed"] == 0, summary
    cluster_stack.cluster.wait_nodes(timeout_s=120)  # every worker node reconnected to the new GCS
    st = cli("status", "--url", cluster_stack.url, env=cluster_stack.env, timeout=60)
    assert st.returncode == 0 and "READY" in st.stdout, st.stdout + st.stderr
    assert len(_replicas(cluster_stack.url)) == 2


def test_router_recovers_after_a_controller_restart(cluster_stack: ClusterStack) -> None:
    """The Serve controller restarts (killed) while the router replica holds the public port; requests keep
    flowing and the new controller keeps the healthy replicas it recovers (the engines and the router are
    the same actors afterwards: serve/replica_logging.py); then the router replica itself dies and the
    restarted controller brings a new one back on the same port: no ``down && up``."""
    import os
    import signal

    cluster = cluster_stack.cluster
    engines = sorted(int(str(a["pid"])) for a in cluster.actors("ServeReplica:qwen-serve:engine-"))
    (router_before,) = cluster.actors("ServeReplica:qwen-serve:router")
    assert len(engines) == 2, engines
    load = Load(cluster_stack.url, MODEL, concurrency=2, max_tokens=32).start()
    try:
        (controller,) = cluster.actors("ServeController")
        os.kill(int(str(controller["pid"])), signal.SIGKILL)
        _poll(lambda: any(a["pid"] != controller["pid"] for a in cluster.actors("ServeController")),
              120, "a new Serve controller")
        # Long enough for the new controller to recover (and, before the fix, kill) the live replicas.
        time.sleep(30)
    finally:
        outcomes = load.stop()
    summary = summarize(outcomes)
    assert summary["requests"] > 0 and summary["failed"] == 0, summary
    assert sorted(int(str(a["pid"])) for a in cluster.actors("ServeReplica:qwen-serve:engine-")) == engines
    (router,) = cluster.actors("ServeReplica:qwen-serve:router")
    assert router["pid"] == router_before["pid"]
    os.kill(int(str(router["pid"])), signal.SIGKILL)
    _poll(lambda: httpx.get(cluster_stack.url + "/ready", timeout=5).status_code == 200, 180,
          "a new router replica serving on the port")
    assert _chat(cluster_stack.url, MODEL).status_code == 200


@pytest.mark.slow
def test_node_loss_fails_only_in_flight_requests(cluster_stack: ClusterStack) -> None:
    """Kill (SIGKILL, every process) a worker node holding an engine replica mid-load: requests in flight on
    it end with an error, never a hang; new requests go to the other replica; Serve reschedules the lost
    replica on the spare pool node and the router picks it up."""
    cluster = cluster_stack.cluster
    before = _replicas(cluster_stack.url)
    victim_ip = sorted(before.values())[0]
    victim = cluster.node_of_ip(victim_ip)
    assert victim is not None
    load = Load(cluster_stack.url, MODEL, concurrency=4, max_tokens=96, read_timeout_s=60).start()
    try:
        time.sleep(6)
        fault_at = time.monotonic()
        cluster.kill_node(victim)
        time.sleep(15)
    finally:
        outcomes = load.stop()
    summary = summarize(outcomes, fault_at)
    assert summary["hangs"] == 0, summary
    assert summary["failed"] == summary["failed_in_flight"], summary  # only requests in flight on the node
    assert summary["failed_in_flight"] <= 4, summary
    assert any(o.ok and o.start > fault_at for o in outcomes), summary  # new requests are served
    _poll(lambda: len(_replicas(cluster_stack.url)) == 2 and victim_ip not in _replicas(cluster_stack.url).values(),
          240, "the lost replica rescheduled on another node and known to the router")


def test_down_removes_only_the_application(cluster_stack: ClusterStack) -> None:
    """``down`` after ``up --address``: the application is gone, the cluster (every live node) is not."""
    alive_before = cluster_stack.cluster.alive_ips()
    down = cli("down", "--timeout", "5", env=cluster_stack.env, timeout=300)
    assert down.returncode == 0 and "keeps running" in down.stdout, down.stdout + down.stderr

    def gone() -> bool:
        try:
            httpx.get(cluster_stack.url + "/health", timeout=3)
        except httpx.HTTPError:
            return True
        return False

    _poll(gone, 120, "the router stopped")
    assert cluster_stack.cluster.alive_ips() == alive_before
    assert cluster_stack.cluster.actors("ServeReplica:qwen-serve") == []
