"""Engine statistics per replica: the vLLM stat logger, the heartbeat record, the registry and /metrics."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

from serve.engine_stats import EngineStats, EngineStatsLogger, attach
from serve.router.metrics import MAX_REPLICA_SLOTS, RouterMetrics
from serve.router.upstream import Endpoint, RayKVRegistry


def step(queries: int, hits: int, requests: int = 1, running: int = 2, waiting: int = 0,
         kv: float = 0.25) -> SchedulerStats:
    prefix = PrefixCacheStats()
    prefix.requests, prefix.queries, prefix.hits = requests, queries, hits
    return SchedulerStats(num_running_reqs=running, num_waiting_reqs=waiting, kv_cache_usage=kv,
                          prefix_cache_stats=prefix)


def test_logger_sums_prefix_deltas_and_keeps_latest_gauges() -> None:
    log = EngineStatsLogger()
    log.record(step(100, 0, running=1), None)
    log.record(step(300, 200, requests=2, running=3, waiting=4, kv=0.5), None)
    log.record(None, None)  # steps without scheduler stats change nothing
    s = log.stats
    assert (s.prefix_queries, s.prefix_hits, s.prefix_requests) == (400, 200, 3)
    assert (s.running, s.waiting, s.kv_usage) == (3, 4, 0.5)
    assert s.hit_rate == pytest.approx(0.5)
    assert EngineStats().hit_rate is None


def test_stats_round_trip_through_json_and_reject_garbage() -> None:
    s = EngineStats(prefix_queries=10, prefix_hits=7, running=1, kv_usage=0.1, updated=5.0)
    back = EngineStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert EngineStats.from_dict(None) is None
    assert EngineStats.from_dict({"prefix_hits": "many"}) is None
    assert EngineStats.from_dict({"prefix_hits": 3, "unknown": 1}) == EngineStats(prefix_hits=3)


def test_attach_appends_to_the_engines_logger_list_or_declines() -> None:
    loggers: list[Any] = []
    client = SimpleNamespace(logger_manager=SimpleNamespace(stat_loggers=loggers))
    stats = attach(client)
    assert stats is not None and len(loggers) == 1
    loggers[0].record(step(8, 8), None)
    assert stats.prefix_hits == 8
    assert attach(SimpleNamespace(logger_manager=None)) is None
    assert attach(None) is None


class FakeKV:
    """Ray's internal KV as a dict (the functions RayKVRegistry calls)."""

    def __init__(self, records: dict[bytes, dict[str, Any]]) -> None:
        self.data = {k: json.dumps(v).encode() for k, v in records.items()}

    def _internal_kv_list(self, prefix: str, namespace: str) -> list[bytes]:
        return [k for k in self.data if k.startswith(prefix.encode())]

    def _internal_kv_get(self, key: bytes, namespace: str) -> bytes | None:
        return self.data.get(key)

    def _internal_kv_del(self, key: bytes, namespace: str) -> None:
        self.data.pop(key, None)


async def test_kv_registry_carries_engine_stats_to_endpoints_and_status(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from ray.experimental import internal_kv

    now = time.time()
    kv = FakeKV({
        b"qwen-serve/endpoints/coder/a": {"url": "http://h:1", "deployment": "coder", "replica": "a",
                                          "heartbeat": now, "stats": EngineStats(prefix_queries=40,
                                                                                 prefix_hits=30).to_dict()},
        b"qwen-serve/endpoints/coder/b": {"url": "http://h:2", "deployment": "coder", "replica": "b",
                                          "heartbeat": now},  # an engine that reports no stats
        b"qwen-serve/endpoints/coder/dead": {"url": "http://h:3", "deployment": "coder", "replica": "dead",
                                             "heartbeat": now - 3600},
    })
    for name in ("_internal_kv_list", "_internal_kv_get", "_internal_kv_del"):
        monkeypatch.setattr(internal_kv, name, getattr(kv, name))
    reg = RayKVRegistry()
    await reg.refresh()
    eps = {e.replica: e for e in reg.endpoints()["coder"]}
    assert set(eps) == {"a", "b"}, "the stale record is dropped"
    assert eps["a"].stats is not None and eps["a"].stats.hit_rate == pytest.approx(0.75)
    assert eps["b"].stats is None
    snap = {r["replica"]: r for r in reg.snapshot()["coder"]}
    assert snap["a"]["engine"]["hit_rate"] == pytest.approx(0.75) and snap["b"]["engine"] is None
    assert b"qwen-serve/endpoints/coder/dead" not in kv.data


def test_metrics_export_per_replica_slots_with_bounded_labels() -> None:
    m = RouterMetrics(["coder"], ["code"])
    eps = [Endpoint("coder", f"r{i:02d}", f"http://h:{i}", served=i,
                    stats=EngineStats(prefix_queries=100, prefix_hits=10 * i)) for i in range(MAX_REPLICA_SLOTS + 3)]
    stranger = Endpoint("not-in-fleet", "z", "http://h:9", served=5)
    m.watch_replicas(lambda: {"coder": list(reversed(eps)), "not-in-fleet": [stranger]})
    text = m.render().decode()
    assert 'qwen_engine_prefix_cache_hits_total{model="coder",replica="0"} 0.0' in text
    assert 'qwen_engine_prefix_cache_hits_total{model="coder",replica="2"} 20.0' in text
    assert 'qwen_engine_prefix_cache_hit_ratio{model="coder",replica="1"} 0.1' in text
    assert 'qwen_router_replica_requests_total{model="none",replica="0"} 5.0' in text
    slots = {line.split('replica="')[1].split('"')[0] for line in text.splitlines()
             if line.startswith("qwen_router_replica_requests_total{")}
    assert slots == {str(i) for i in range(MAX_REPLICA_SLOTS)}, "replica ids never become labels"


def test_cli_status_prints_each_replicas_engine_figures(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from serve import cli, stack

    snap = {"endpoints": {"coder": [
        {"replica": "a", "url": "http://h:1", "ongoing": 1, "served": 9, "healthy": True,
         "engine": {**EngineStats(prefix_queries=200, prefix_hits=150, running=1, kv_usage=0.25).to_dict(),
                    "hit_rate": 0.75}},
        {"replica": "b", "url": "http://h:2", "ongoing": 0, "served": 0, "healthy": True, "engine": None},
    ]}}
    answers = {"/ready": (200, {"ready": True}), "/v1/status": (200, snap)}
    monkeypatch.setattr(stack, "http_json", lambda url: answers[url.removeprefix("http://s")])
    assert cli.cmd_status(argparse.Namespace(url="http://s", json=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "http://s: READY" and lines[1] == "  coder: 2 replica(s)"
    assert lines[2].endswith("| engine running=1 waiting=0 kv=25% prefix-cache hits=75%")
    assert lines[3].endswith("healthy=True"), "a replica without engine figures prints none"
