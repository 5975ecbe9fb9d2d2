"""Where the engines are and how loaded they are: endpoint registries and the HTTP connection pool.

An :class:`Endpoint` is one engine replica's private vLLM HTTP app (see ``serve.engine_server``). The
router counts its own in-flight requests per endpoint (exact for the requests it sent), marks an endpoint
down for a short cool-off when a connection to it fails, and drops endpoints that disappear from the
registry (Ray Serve replaced the replica).

Registries:

- :class:`RayKVRegistry`: the replicas' records in Ray's internal KV (the real stack).
- :class:`StaticRegistry`: fixed URLs per deployment (unit tests and the router-only benchmark over fake
  engines).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from serve.engine_record import EngineStats

if TYPE_CHECKING:  # pragma: no cover
    from serve.router.facts import RequestFacts
    from serve.router.replicas import ReplicaPicker

logger = logging.getLogger(__name__)

#: Seconds an endpoint is avoided after a failed connection.
DOWN_COOLOFF_S = 5.0


@dataclass
class Endpoint:
    """One engine replica's HTTP endpoint and the router's view of its load.

    ``urls`` are the replica's frontend processes (``engine_frontends``; empty when the replica serves its
    engine itself at ``url``): :meth:`target` rotates requests over them.
    """

    deployment: str
    replica: str
    url: str
    ongoing: int = 0
    served: int = 0
    failures: int = 0
    down_until: float = 0.0
    stats: EngineStats | None = None
    urls: tuple[str, ...] = ()

    def target(self) -> str:
        """Base URL for the next request: the replica's frontends in turn, else its own ``url``."""
        if not self.urls:
            return self.url
        return self.urls[self.served % len(self.urls)]

    @property
    def healthy(self) -> bool:
        """Whether the endpoint is usable now (not in a cool-off after a failure)."""
        return time.monotonic() >= self.down_until

    def mark_down(self, cooloff_s: float = DOWN_COOLOFF_S) -> None:
        """Avoid this endpoint for ``cooloff_s`` seconds."""
        self.failures += 1
        self.down_until = time.monotonic() + cooloff_s


@dataclass
class DeploymentLoad:
    """Aggregate load of one deployment as the router sees it."""

    ongoing: int = 0
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def healthy_endpoints(self) -> list[Endpoint]:
        """Endpoints not in cool-off."""
        return [e for e in self.endpoints if e.healthy]


class EndpointRegistry(abc.ABC):
    """Source of the engine endpoints of every deployment, plus the router's load bookkeeping."""

    def __init__(self) -> None:
        self._deployments: dict[str, DeploymentLoad] = {}
        #: Engine statistics per ``(deployment, replica)`` from the latest fetch (registries that have them).
        self._stats: dict[tuple[str, str], EngineStats] = {}
        #: Frontend URLs per ``(deployment, replica)`` from the latest fetch (replicas with engine frontends).
        self._frontends: dict[tuple[str, str], tuple[str, ...]] = {}

    @abc.abstractmethod
    async def _fetch(self) -> Mapping[str, Mapping[str, str]]:
        """Return ``{deployment: {replica_id: url}}`` as the source knows it now."""

    async def refresh(self) -> None:
        """Reconcile the endpoint table with the source (keeps load counters of known replicas)."""
        current = await self._fetch()
        for name, replicas in current.items():
            load = self._deployments.setdefault(name, DeploymentLoad())
            known = {(e.replica, e.url): e for e in load.endpoints}
            load.endpoints = [known.get((rid, url)) or Endpoint(name, rid, url) for rid, url in replicas.items()]
            for ep in load.endpoints:
                ep.stats = self._stats.get((name, ep.replica))
                ep.urls = self._frontends.get((name, ep.replica), ())
        for name in set(self._deployments) - set(current):
            self._deployments[name].endpoints = []

    def load(self, deployment: str) -> DeploymentLoad:
        """The load record of a deployment (empty when it has no endpoint yet)."""
        return self._deployments.setdefault(deployment, DeploymentLoad())

    def pick_replica(self, deployment: str, facts: RequestFacts, exclude: Iterable[Endpoint] = (), *,
                     picker: ReplicaPicker | None = None) -> tuple[Endpoint | None, str]:
        """Pick a healthy endpoint of a deployment with its replica picker (default: least in flight).

        Returns:
            ``(endpoint or None, outcome label)``.
        """
        skip = {id(e) for e in exclude}
        candidates = [ep for ep in self.load(deployment).endpoints if id(ep) not in skip and ep.healthy]
        if not candidates:
            return None, "none"
        if picker is None or len(candidates) == 1:
            return min(candidates, key=lambda e: (e.ongoing, e.served)), "least_loaded"
        ep, outcome = picker.pick(candidates, facts)
        return ep, str(outcome)

    def acquire(self, ep: Endpoint) -> None:
        """Count a request as in flight on ``ep``."""
        ep.ongoing += 1
        ep.served += 1
        self.load(ep.deployment).ongoing += 1

    def release(self, ep: Endpoint) -> None:
        """Count a request on ``ep`` as finished."""
        ep.ongoing -= 1
        self.load(ep.deployment).ongoing -= 1

    def endpoints(self) -> dict[str, list[Endpoint]]:
        """The live endpoint objects per deployment (metrics read them at scrape time)."""
        return {name: list(load.endpoints) for name, load in self._deployments.items()}

    def snapshot(self) -> dict[str, list[dict[str, object]]]:
        """Endpoint table for ``/v1/status``-style introspection."""
        return {
            name: [
                {"replica": e.replica, "url": e.url, "urls": list(e.urls), "ongoing": e.ongoing, "served": e.served,
                 "healthy": e.healthy, "failures": e.failures,
                 "engine": None if e.stats is None else {**e.stats.to_dict(), "hit_rate": e.stats.hit_rate}}
                for e in load.endpoints
            ]
            for name, load in self._deployments.items()
        }


class StaticRegistry(EndpointRegistry):
    """Fixed endpoints: ``{deployment: [url, ...]}`` (tests, router-only benchmarks)."""

    def __init__(self, urls: Mapping[str, list[str]]) -> None:
        super().__init__()
        self._urls = {name: {f"r{i}": u.rstrip("/") for i, u in enumerate(lst)} for name, lst in urls.items()}

    async def _fetch(self) -> Mapping[str, Mapping[str, str]]:
        return self._urls


class RayKVRegistry(EndpointRegistry):
    """Endpoints published by engine replicas in Ray's internal KV (``serve.engine_server``)."""

    async def _fetch(self) -> Mapping[str, Mapping[str, str]]:
        urls, self._stats, self._frontends = await asyncio.get_running_loop().run_in_executor(None, _read_kv)
        return urls


def _read_kv() -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], EngineStats],
                        dict[tuple[str, str], tuple[str, ...]]]:
    from serve.engine_record import read_records

    out: dict[str, dict[str, str]] = {}
    stats: dict[tuple[str, str], EngineStats] = {}
    fronts: dict[tuple[str, str], tuple[str, ...]] = {}
    for rec in read_records():
        if rec.draining:  # HOOK(autoscale): a replica being removed gets no new requests
            continue
        out.setdefault(rec.deployment, {})[rec.replica] = rec.url
        if rec.stats is not None:
            stats[rec.deployment, rec.replica] = rec.stats
        if rec.urls:
            fronts[rec.deployment, rec.replica] = tuple(rec.urls)
    return out, stats, fronts


class RegistryRefresher:
    """Background task that refreshes a registry every ``interval_s`` seconds."""

    def __init__(self, registry: EndpointRegistry, interval_s: float = 1.0) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Refresh once now, then keep refreshing in the background."""
        with contextlib.suppress(Exception):
            await self.registry.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.registry.refresh()
            except Exception:  # noqa: BLE001 - keep the last known table
                logger.warning("endpoint refresh failed", exc_info=True)

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def make_session(connect_timeout_s: float = 5.0) -> aiohttp.ClientSession:
    """The router's pooled keep-alive HTTP client towards the engines (no total timeout: streams are long;
    the router enforces each request's own deadline)."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
