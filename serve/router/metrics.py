"""Every Prometheus object of the router, with labels only from closed sets.

Label values: ``task`` from the fleet's task set (or ``none``), ``model`` from the fleet's deployment names
(or ``none``), ``status`` the status class (``2xx`` ... ``5xx``), ``reason`` from fixed vocabularies. Each app
gets its own registry so several apps (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DECISION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2)
SPILL_REASONS = ("saturated", "unhealthy", "connect_error")
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

    def render(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
