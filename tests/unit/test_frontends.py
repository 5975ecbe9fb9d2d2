"""Engine frontends (``engine_frontends``): config, the launch hook, stats merging, port windows, router spread.

The processes themselves run vLLM: the e2e module ``tests/e2e/test_frontends.py`` drives them for real.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from serve import frontends, node_ports
from serve.config import FleetConfig
from serve.engine_stats import EngineStats
from serve.router.upstream import Endpoint, RayKVRegistry
from tests.unit.test_config import dep, error_of, fleet
from tests.unit.test_engine_stats import FakeKV


# ------------------------------------------------------------------------------------------- config
def test_engine_frontends_defaults_to_zero_and_is_bounded() -> None:
    cfg = FleetConfig.from_dict(fleet(dep()), check_paths=False)
    assert cfg.deployments[0].engine_frontends == 0
    assert "deployments[m].engine_frontends: Input should be greater than or equal to 0" in error_of(
        fleet(dep(engine_frontends=-1)))
    assert "deployments[m].engine_frontends: Input should be less than or equal to 32" in error_of(
        fleet(dep(engine_frontends=33)))


def test_frontends_need_the_multimodal_processor_cache_off() -> None:
    vl = dep("vl", variant="qwen2.5-vl-3b-instruct", engine_frontends=2,
             engine={"mm_processor_cache_gb": 4})
    msg = error_of(fleet(vl))
    assert "deployments[vl]: deployment 'vl': engine_frontends=2 needs engine mm_processor_cache_gb: 0" in msg


def test_frontends_reach_the_replica_and_its_bundle() -> None:
    from serve.deployments import build_engine_deployment, build_llm_config

    cfg = FleetConfig.from_dict(fleet(dep(engine_frontends=3)), check_paths=False)
    spec = cfg.deployments[0]
    llm = build_llm_config(spec, cfg)
    assert llm.deployment_config["ray_actor_options"] == {"num_cpus": 4}, "one logical CPU per frontend"
    app = build_engine_deployment(spec, cfg)
    assert app._bound_deployment.init_kwargs["engine_frontends"] == 3  # type: ignore[attr-defined]
    plain = build_llm_config(FleetConfig.from_dict(fleet(dep()), check_paths=False).deployments[0])
    assert "ray_actor_options" not in plain.deployment_config


def test_multimodal_frontends_turn_the_processor_cache_off() -> None:
    from serve.deployments import build_llm_config

    cfg = FleetConfig.from_dict(fleet(dep("vl", variant="qwen2.5-vl-3b-instruct", engine_frontends=2)),
                                check_paths=False)
    assert build_llm_config(cfg.deployments[0], cfg).engine_kwargs["mm_processor_cache_gb"] == 0


# ------------------------------------------------------------------------------------------- launch hook
def test_launch_hook_asks_vllm_for_one_client_slot_per_frontend_and_sets_the_port_window() -> None:
    from vllm.v1.engine import core_client

    original = core_client.get_engine_zmq_addresses
    calls: list[int] = []

    def fake(vllm_config: Any, num_api_servers: int = 1, **kw: Any) -> Any:
        calls.append(num_api_servers)
        return SimpleNamespace(inputs=[f"ipc://in{i}" for i in range(num_api_servers)],
                               outputs=[f"ipc://out{i}" for i in range(num_api_servers)])

    core_client.get_engine_zmq_addresses = fake
    try:
        config = SimpleNamespace(parallel_config=SimpleNamespace(data_parallel_master_port=0))
        with frontends.engine_launch_hook(3, 20040) as seen:
            core_client.get_engine_zmq_addresses(config)
        assert calls == [4], "the replica's own client plus three frontends"
        assert seen[0].inputs == ["ipc://in0", "ipc://in1", "ipc://in2", "ipc://in3"]
        assert config.parallel_config.data_parallel_master_port == 19940, "vLLM 0.26 probes from master + 100"
        assert core_client.get_engine_zmq_addresses is fake, "the hook is undone on exit"
    finally:
        core_client.get_engine_zmq_addresses = original


def test_frontends_refuse_an_engine_without_enough_local_client_slots() -> None:
    fronts = frontends.EngineFrontends("m", 2)
    with pytest.raises(RuntimeError, match="engine has 2 client slots; 3 needed"):
        fronts.start(vllm_config=None, args=SimpleNamespace(), host="127.0.0.1",
                     launch=frontends.LaunchInfo(inputs=["ipc://a", "ipc://b"], outputs=["ipc://c", "ipc://d"]))
    remote = frontends.LaunchInfo(inputs=["ipc://a", "tcp://h:1", "tcp://h:2"], outputs=["ipc://c", "ipc://d",
                                                                                        "ipc://e"])
    with pytest.raises(RuntimeError, match="IPC client addresses"):
        fronts.start(vllm_config=None, args=SimpleNamespace(), launch=remote, host="127.0.0.1")


def test_frontend_args_drop_the_access_log_and_leave_the_replicas_args_alone() -> None:
    args = SimpleNamespace(disable_uvicorn_access_log=False, uvicorn_log_level="info", model="m")
    out = frontends.frontend_args(args)  # type: ignore[arg-type]
    assert out.disable_uvicorn_access_log is True and out.model == "m"
    assert args.disable_uvicorn_access_log is False


# ------------------------------------------------------------------------------------------- statistics
def test_merged_stats_sum_the_counters_and_take_the_latest_gauges() -> None:
    own = EngineStats(prefix_queries=10, prefix_hits=5, prefix_requests=2, running=1, waiting=0, kv_usage=0.1,
                      updated=100.0)
    f1 = EngineStats(prefix_queries=30, prefix_hits=20, prefix_requests=6, running=40, waiting=3, kv_usage=0.5,
                     updated=105.0)
    merged = frontends.merge_stats([own, f1, None])
    assert merged == EngineStats(prefix_queries=40, prefix_hits=25, prefix_requests=8, running=40, waiting=3,
                                 kv_usage=0.5, updated=105.0)
    assert frontends.merge_stats([None, None]) is None


def test_stats_cross_the_shared_array_both_ways() -> None:
    import multiprocessing

    arr = multiprocessing.get_context("spawn").RawArray("d", len(frontends.STATS_FIELDS))
    assert frontends.stats_from_array(list(arr)) is None, "nothing before the first engine step"
    s = EngineStats(prefix_queries=7, prefix_hits=3, prefix_requests=1, running=2, waiting=5, kv_usage=0.25,
                    updated=time.time())
    frontends.stats_to_array(s, arr)
    assert frontends.stats_from_array(list(arr)) == s


# ------------------------------------------------------------------------------------------- port windows
def test_port_windows_are_distinct_per_holder_and_freed_on_release(tmp_path: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(node_ports.ENV_BASE, "30000")
    a = node_ports.reserve_window(tmp_path, slots=2)
    b = node_ports.reserve_window(tmp_path, slots=2)
    assert a is not None and b is not None
    assert (a.slot, a.first, b.slot, b.first) == (0, 30000, 1, 30000 + node_ports.WINDOW)
    assert node_ports.reserve_window(tmp_path, slots=2) is None, "every slot is held"
    a.release()
    c = node_ports.reserve_window(tmp_path, slots=2)
    assert c is not None and c.slot == 0, "a released (or dead holder's) slot is taken again"
    b.release()
    c.release()


def test_a_bad_port_base_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(node_ports.ENV_BASE, "not-a-port")
    assert node_ports.port_base() == node_ports.DEFAULT_BASE


# ------------------------------------------------------------------------------------------- router
def test_endpoint_rotates_over_its_frontends_and_falls_back_to_its_url() -> None:
    ep = Endpoint("d", "r0", "http://h:1")
    assert ep.target() == "http://h:1"
    ep.urls = ("http://h:2", "http://h:3", "http://h:4")
    picks = []
    for _ in range(6):
        ep.served += 1  # what EndpointRegistry.acquire does before the request is sent
        picks.append(ep.target())
    assert picks == ["http://h:3", "http://h:4", "http://h:2"] * 2


async def test_kv_registry_reads_the_frontend_urls_of_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.experimental import internal_kv

    now = time.time()
    kv = FakeKV({
        b"qwen-serve/endpoints/coder/a": {"url": "http://h:1", "deployment": "coder", "replica": "a",
                                          "heartbeat": now, "urls": ["http://h:7/", "http://h:8"]},
        b"qwen-serve/endpoints/coder/b": {"url": "http://h:2", "deployment": "coder", "replica": "b",
                                          "heartbeat": now, "urls": "not a list"},
    })
    for name in ("_internal_kv_list", "_internal_kv_get", "_internal_kv_del"):
        monkeypatch.setattr(internal_kv, name, getattr(kv, name))
    reg = RayKVRegistry()
    await reg.refresh()
    eps = {e.replica: e for e in reg.endpoints()["coder"]}
    assert eps["a"].urls == ("http://h:7", "http://h:8")
    assert eps["b"].urls == () and eps["b"].target() == "http://h:2", "a malformed list is ignored"
    snap = {r["replica"]: r for r in reg.snapshot()["coder"]}
    assert snap["a"]["urls"] == ["http://h:7", "http://h:8"]
    assert json.loads(kv.data[b"qwen-serve/endpoints/coder/a"])["url"] == "http://h:1"


async def test_frontend_gate_refuses_without_the_secret_and_shares_its_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frontend process is behind the same gate as the replica's own app (vLLM adds it via --middleware)."""
    import multiprocessing

    import httpx

    from serve import engine_gate
    from serve.security.engine_secret import HEADER

    shared = multiprocessing.get_context("spawn").RawValue("i", 0)
    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(int(shared.value))  # counted while in flight
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    monkeypatch.setattr(engine_gate, "FRONTEND_GATE", ("s3cret", engine_gate.SharedInflightCounter(shared), True))
    gated = engine_gate.FrontendGate(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gated), base_url="http://f") as c:
        assert (await c.get("/health")).status_code == 401
        assert (await c.get("/health", headers={HEADER: "wrong"})).status_code == 401
        assert (await c.get("/health", headers={HEADER: "s3cret"})).status_code == 200
    assert seen == [1] and shared.value == 0
