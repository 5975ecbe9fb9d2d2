"""The engine-to-router record: how an engine replica tells every router where it is and how busy it is.

Each engine replica (``serve.engine_server``) serves vLLM's OpenAI app on a private port and publishes one
:class:`EngineRecord` in Ray's internal KV under :func:`record_key`, refreshed every :data:`HEARTBEAT_S`
seconds with its engine's own figures (:class:`EngineStats`). Routers list the records of every deployment
(:func:`read_records`) and drop those older than :data:`STALE_AFTER_S` (a replica killed without a goodbye).

This module is the one place that knows the record: its key, namespace, heartbeat and staleness, how it is
built and parsed, and the engine statistics it carries. It imports nothing from vLLM; Ray only inside the KV
functions, so the router's unit tests and the CLI can use the types.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: Prefix of the internal-KV keys under which engine replicas publish their record.
KEY_PREFIX = "qwen-serve/endpoints/"
#: Ray namespace of the internal-KV entries.
KV_NAMESPACE = "qwen-serve"
#: Engine replicas refresh their record this often (seconds).
HEARTBEAT_S = 2.0
#: Records older than this (seconds) belong to replicas that died without deregistering.
STALE_AFTER_S = 20.0
#: Engine figures older than this (seconds) are not used for load decisions.
STATS_FRESH_S = 10.0


def record_key(deployment: str, replica_id: str) -> bytes:
    """Internal-KV key of one replica's record."""
    return f"{KEY_PREFIX}{deployment}/{replica_id}".encode()


@dataclass
class EngineStats:
    """Cumulative and latest engine statistics of one replica (from vLLM's own scheduler stats).

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

    def fresh(self, now: float | None = None) -> bool:
        """Whether the figures are recent enough (:data:`STATS_FRESH_S`) to base load decisions on."""
        return ((time.time() if now is None else now) - self.updated) <= STATS_FRESH_S

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the record (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> EngineStats | None:
        """Parse a record's ``stats`` (None when absent or malformed)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: type(getattr(cls, k))(data[k]) for k in cls.__dataclass_fields__ if k in data})
        except (TypeError, ValueError):
            return None


@dataclass
class EngineRecord:
    """What one engine replica publishes.

    Attributes:
        deployment: The fleet deployment (served model name).
        replica: Ray Serve's replica id.
        url: Base URL of the replica's private vLLM HTTP app.
        pid: Process id of the replica (for status and orphan clean-up).
        started: Wall time the replica registered.
        heartbeat: Wall time of the latest refresh.
        stats: The engine's latest figures (None when the engine reports none).
        urls: The replica's frontend processes (``engine_frontends``), each serving vLLM's OpenAI app as
            a client of the same engine; the router spreads requests over them (empty: use ``url``).
        frontend_pids: Their process ids (orphan clean-up).
        draining: The replica is being removed: routers stop sending it new requests (it finishes the
            in-flight ones, then withdraws the record).
        extra: Fields this version does not know (kept, so newer replicas and older routers get along).
    """

    deployment: str
    replica: str
    url: str
    pid: int = 0
    started: float = 0.0
    heartbeat: float = 0.0
    stats: EngineStats | None = None
    urls: list[str] = field(default_factory=list)
    frontend_pids: list[int] = field(default_factory=list)
    draining: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """This record's internal-KV key."""
        return record_key(self.deployment, self.replica)

    def stale(self, now: float | None = None) -> bool:
        """Whether the replica stopped refreshing its record (:data:`STALE_AFTER_S`)."""
        last = self.heartbeat or self.started
        return ((time.time() if now is None else now) - last) > STALE_AFTER_S

    def to_json(self) -> bytes:
        """Serialise for the KV."""
        data: dict[str, Any] = {**self.extra, "url": self.url, "deployment": self.deployment,
                                "replica": self.replica, "pid": self.pid, "started": self.started,
                                "heartbeat": self.heartbeat}
        if self.draining:
            data["draining"] = True
        if self.stats is not None:
            data["stats"] = self.stats.to_dict()
        if self.urls:
            data["urls"] = list(self.urls)
            data["frontend_pids"] = list(self.frontend_pids)
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> EngineRecord | None:
        """Parse a KV value (None when it is not a valid record)."""
        try:
            data = json.loads(raw)
            known = {"url", "deployment", "replica", "pid", "started", "heartbeat", "stats", "urls", "frontend_pids",
                     "draining"}
            started = float(data.get("started") or 0.0)
            return cls(
                deployment=str(data["deployment"]), replica=str(data["replica"]), url=str(data["url"]),
                pid=int(data.get("pid") or 0), started=started,
                heartbeat=float(data.get("heartbeat") or started),
                stats=EngineStats.from_dict(data.get("stats")), draining=data.get("draining") is True,
                urls=_strings(data.get("urls")),
                frontend_pids=[p for p in data.get("frontend_pids") or () if isinstance(p, int)]
                if isinstance(data.get("frontend_pids"), list) else [],
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _strings(value: Any) -> list[str]:
    """Frontend URLs from a record: a list of strings (trailing slashes dropped), else none."""
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        return []
    return [u.rstrip("/") for u in value]


# --- the KV (Ray's internal KV; imported lazily) --------------------------------------------------------
def publish(record: EngineRecord) -> None:
    """Write (or refresh) a record; sets its heartbeat to now."""
    from ray.experimental import internal_kv

    record.heartbeat = time.time()
    internal_kv._internal_kv_put(record.key, record.to_json(), namespace=KV_NAMESPACE)


def withdraw(key: bytes) -> None:
    """Delete a record (a replica going away)."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(key, namespace=KV_NAMESPACE)


def read_records(drop_stale: bool = True) -> list[EngineRecord]:
    """Every live record in the KV; stale ones are deleted (their replica died without deregistering)."""
    from ray.experimental import internal_kv

    now = time.time()
    out: list[EngineRecord] = []
    for key in internal_kv._internal_kv_list(KEY_PREFIX, namespace=KV_NAMESPACE):
        raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
        rec = EngineRecord.from_json(raw) if raw else None
        if rec is None:
            continue
        if drop_stale and rec.stale(now):
            # Ray Serve starts a new replica with its own record.
            internal_kv._internal_kv_del(key, namespace=KV_NAMESPACE)
            logger.info("dropped stale endpoint %s of %s", rec.replica, rec.deployment)
            continue
        out.append(rec)
    return out


def by_deployment(records: Iterable[EngineRecord]) -> dict[str, dict[str, EngineRecord]]:
    """Group records as ``{deployment: {replica: record}}``."""
    out: dict[str, dict[str, EngineRecord]] = {}
    for rec in records:
        out.setdefault(rec.deployment, {})[rec.replica] = rec
    return out
