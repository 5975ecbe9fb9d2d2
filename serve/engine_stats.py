"""Engine-side counters the router reads per replica: prefix-cache hits, running and waiting requests.

vLLM computes these in the engine core and hands them, once per scheduler step, to the stat loggers of its
``AsyncLLM`` (in the replica's own process). :class:`EngineStatsLogger` is one more such logger: it keeps
cumulative prefix-cache query/hit token counts and the latest queue gauges in an :class:`EngineStats`, which
the engine replica publishes with its endpoint heartbeat (``serve.engine_server``). The router turns them into
per-replica metrics and uses them in ``/v1/status``; benchmarks read hit rates from there.

This module imports nothing from vLLM, so the router and the unit tests can use :class:`EngineStats`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class EngineStats:
    """Cumulative and latest engine statistics of one replica.

    Attributes:
        prefix_queries: Prompt tokens looked up in the prefix cache (cumulative).
        prefix_hits: Of those, tokens found in the cache (cumulative).
        prefix_requests: Requests that looked up the prefix cache (cumulative).
        running: Requests in the engine's running batch (latest step).
        waiting: Requests waiting in the engine's queue (latest step).
        kv_usage: Fraction of the KV cache in use (latest step, 0..1).
        updated: Wall time of the latest record.
    """

    prefix_queries: int = 0
    prefix_hits: int = 0
    prefix_requests: int = 0
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0
    updated: float = 0.0

    @property
    def hit_rate(self) -> float | None:
        """Prefix-cache hit rate over the replica's lifetime (None before any lookup)."""
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the heartbeat record (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> EngineStats | None:
        """Parse a heartbeat record's ``stats`` (None when absent or malformed)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: type(getattr(cls, k))(data[k]) for k in cls.__dataclass_fields__ if k in data})
        except (TypeError, ValueError):
            return None


class EngineStatsLogger:
    """A vLLM stat logger (duck-typed to ``StatLoggerManager``'s loggers) that fills an :class:`EngineStats`.

    vLLM's scheduler hands out prefix-cache statistics as per-step deltas; this sums them. Works with the
    ``record(scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0)`` interface of vLLM 0.26+.
    """

    def __init__(self, stats: EngineStats | None = None) -> None:
        self.stats = stats or EngineStats()

    def record(self, scheduler_stats: Any, iteration_stats: Any = None, mm_cache_stats: Any = None,
               engine_idx: int = 0) -> None:
        """Fold one step's scheduler statistics into the cumulative counters."""
        if scheduler_stats is None:
            return
        s = self.stats
        s.running = int(getattr(scheduler_stats, "num_running_reqs", 0))
        s.waiting = int(getattr(scheduler_stats, "num_waiting_reqs", 0))
        s.kv_usage = float(getattr(scheduler_stats, "kv_cache_usage", 0.0))
        prefix = getattr(scheduler_stats, "prefix_cache_stats", None)
        if prefix is not None:
            s.prefix_queries += int(prefix.queries)
            s.prefix_hits += int(prefix.hits)
            s.prefix_requests += int(prefix.requests)
        s.updated = time.time()

    def log(self) -> None:
        """Nothing to print: the heartbeat carries the numbers."""

    def log_engine_initialized(self) -> None:
        """Nothing to do at engine start."""

    def record_sleep_state(self, is_awake: int = 0, level: int = 0) -> None:
        """Sleep mode is not tracked."""


def attach(engine_client: Any) -> EngineStats | None:
    """Add an :class:`EngineStatsLogger` to a vLLM ``AsyncLLM``'s stat loggers.

    Returns:
        The stats it fills, or None when the engine logs no stats (``disable_log_stats``) or its logger
        manager has another shape (a vLLM version this was not written for); serving works either way.
    """
    manager = getattr(engine_client, "logger_manager", None)
    loggers = getattr(manager, "stat_loggers", None)
    if not isinstance(loggers, list):
        logger.warning("engine stats unavailable: this vLLM's AsyncLLM has no stat logger list")
        return None
    stat_logger = EngineStatsLogger()
    loggers.append(stat_logger)
    return stat_logger.stats
