"""Every Prometheus object of the router, with labels only from closed sets.

Label values: ``task`` from the fleet's task set (or ``none``), ``model`` from the fleet's deployment names
(or ``none``), ``status`` the status class (``2xx`` ... ``5xx``), ``reason`` from fixed vocabularies. Each app
gets its own registry so several apps (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DECISION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2)
SPILL_REASONS = ("saturated", "unhealthy", "connect_error")
#: Replica labels are slots ``"0"`` .. ``"MAX_REPLICA_SLOTS-1"`` (by replica id order); more are not exported.
MAX_REPLICA_SLOTS = 32
REJECT_REASONS = ("auth", "rate_limit", "invalid", "not_found", "overloaded", "timeout", "upstream")


class RouterMetrics:
    """The router's metrics on a private registry.

    Args:
        models: Deployment names (closed label set).
        tasks: Task names (closed label set).
    """

    def __init__(self, models: Iterable[str], tasks: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.models = frozenset(models)
        self.tasks = frozenset(tasks)
        r = self.registry
        self.requests = Counter("qwen_router_requests", "Requests by task, routed model and status class",
                                ["task", "model", "status"], registry=r)
        self.decision = Histogram("qwen_router_decision_seconds", "Time to classify and choose a deployment",
                                  buckets=_DECISION_BUCKETS, registry=r)
        self.spillovers = Counter("qwen_router_spillovers", "Requests served by a later candidate, by reason",
                                  ["reason"], registry=r)
        self.rejections = Counter("qwen_router_rejections", "Requests answered by the router with an error",
                                  ["reason"], registry=r)
        self.ttft = Histogram("qwen_router_ttft_seconds", "Time to first byte of the engine's answer",
                              ["model"], buckets=_LAT_BUCKETS, registry=r)
        self.e2e = Histogram("qwen_router_e2e_seconds", "End-to-end latency as the router sees it",
                             ["model"], buckets=_LAT_BUCKETS, registry=r)
        self.inflight = Gauge("qwen_router_inflight_requests", "Requests in flight per deployment", ["model"],
                              registry=r)
        self.replica_choices = Counter("qwen_router_replica_choices", "Replica choices by policy outcome",
                                       ["model", "outcome"], registry=r)
        self.cancelled = Counter("qwen_router_client_disconnects", "Streams the client closed early",
                                 ["model"], registry=r)
        self.compat = Counter("qwen_router_compat_rewrites", "Pre-0.12 vLLM request fields the router rewrote",
                              ["field"], registry=r)

    def watch_replicas(self, snapshot: Callable[[], Mapping[str, Sequence[Any]]]) -> None:
        """Export per-replica figures read from ``snapshot()`` (the registry's endpoints) at scrape time."""
        self.registry.register(ReplicaCollector(snapshot, self.model_label))

    def model_label(self, model: str | None) -> str:
        """Bound a model name to the closed set."""
        return model if model in self.models else "none"

    def task_label(self, task: str | None) -> str:
        """Bound a task name to the closed set."""
        return task if task in self.tasks else "none"

    def observe_request(self, task: str | None, model: str | None, status: int) -> None:
        """Count one finished request."""
        self.requests.labels(self.task_label(task), self.model_label(model), f"{status // 100}xx").inc()

    def reject(self, reason: str) -> None:
        """Count one request the router answered with an error itself."""
        self.rejections.labels(reason if reason in REJECT_REASONS else "invalid").inc()

    def count_compat(self, rewrites: Iterable[str]) -> None:
        """Count the legacy fields of one request (``old->new`` strings from ``serve.router.compat``)."""
        from serve.router.compat import GUIDED_FIELDS

        for rewrite in rewrites:
            field = rewrite.split("->", 1)[0]
            self.compat.labels(field if field in GUIDED_FIELDS else "other").inc()

    def render(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


class ReplicaCollector(Collector):
    """Per-replica metrics computed at scrape time from the router's endpoint table.

    The router's own counts (requests sent, in flight) and each engine's statistics as its heartbeat last
    reported them (prefix-cache tokens queried and hit, running and waiting requests, KV-cache use). Replica
    labels are slots, not replica ids, so the label set stays bounded when Ray Serve replaces replicas.

    Args:
        snapshot: Returns ``{deployment: [Endpoint, ...]}``.
        model_label: Bounds a deployment name to the closed model set.
    """

    def __init__(self, snapshot: Callable[[], Mapping[str, Sequence[Any]]],
                 model_label: Callable[[str | None], str]) -> None:
        self._snapshot = snapshot
        self._model_label = model_label

    def describe(self) -> Iterator[Metric]:
        """No static description (families depend on the live table)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Yield the per-replica families."""
        labels = ["model", "replica"]
        fam: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "served": CounterMetricFamily("qwen_router_replica_requests", "Requests sent to each engine replica",
                                          labels=labels),
            "inflight": GaugeMetricFamily("qwen_router_replica_inflight_requests",
                                          "Requests in flight per engine replica", labels=labels),
            "queries": CounterMetricFamily("qwen_engine_prefix_cache_queries",
                                           "Prompt tokens looked up in the replica's prefix cache", labels=labels),
            "hits": CounterMetricFamily("qwen_engine_prefix_cache_hits",
                                        "Prompt tokens found in the replica's prefix cache", labels=labels),
            "hit_rate": GaugeMetricFamily("qwen_engine_prefix_cache_hit_ratio",
                                          "Lifetime prefix-cache hit rate of the replica", labels=labels),
            "running": GaugeMetricFamily("qwen_engine_running_requests", "Requests in the engine's batch",
                                         labels=labels),
            "waiting": GaugeMetricFamily("qwen_engine_waiting_requests", "Requests queued in the engine",
                                         labels=labels),
            "kv": GaugeMetricFamily("qwen_engine_kv_cache_usage_ratio", "KV-cache use of the replica",
                                    labels=labels),
        }
        for name, endpoints in self._snapshot().items():
            model = self._model_label(name)
            ordered = sorted(endpoints, key=lambda e: e.replica)[:MAX_REPLICA_SLOTS]
            for slot, ep in enumerate(ordered):
                lv = [model, str(slot)]
                fam["served"].add_metric(lv, ep.served)
                fam["inflight"].add_metric(lv, ep.ongoing)
                st = ep.stats
                if st is None:
                    continue
                fam["queries"].add_metric(lv, st.prefix_queries)
                fam["hits"].add_metric(lv, st.prefix_hits)
                if st.hit_rate is not None:
                    fam["hit_rate"].add_metric(lv, st.hit_rate)
                fam["running"].add_metric(lv, st.running)
                fam["waiting"].add_metric(lv, st.waiting)
                fam["kv"].add_metric(lv, st.kv_usage)
        yield from fam.values()
