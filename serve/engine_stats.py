"""Engine-side counters the router reads per replica: prefix-cache hits, running and waiting requests.

vLLM computes these in the engine core and hands them, once per scheduler step, to the stat loggers of its
``AsyncLLM`` (in the replica's own process). :class:`EngineStatsLogger` is one more such logger: it keeps
cumulative prefix-cache query/hit token counts and the latest queue gauges in an :class:`EngineStats`, which
the engine replica publishes with its endpoint heartbeat (``serve.engine_server``). The router turns them into
per-replica metrics and uses them in ``/v1/status``; benchmarks read hit rates from there.

The :class:`EngineStats` type itself lives with the record it travels in (``serve.engine_record``).
This module imports nothing from vLLM.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from serve.engine_record import EngineStats

__all__ = ["EngineStats", "EngineStatsLogger", "attach"]

logger = logging.getLogger(__name__)


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
