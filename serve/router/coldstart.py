"""Scale from zero: hold requests for a deployment at zero replicas, ask Ray Serve for one, relay once it is up.

A deployment with ``autoscaling.min_replicas: 0`` that Serve scaled to zero has no engine record, so the
routing policy sees it as down. :class:`ColdStart` wraps the router's decision and dispatch steps
(``RouterService``) so that such a deployment is *scaled to zero*, not down:

- **Held, not failed.** A request for it waits until a replica registers, then goes through the normal
  dispatch. Held requests are bounded per deployment (``router.cold_start.max_held_requests``) and in time
  (``max_wait_s``, and the request's own deadline); past either, the answer is 503 with ``Retry-After``.
- **Waking.** The router asks Serve for a replica the way Serve itself scales from zero: one call queued on the
  deployment's handle (``QwenLLMServer.wake``) is demand to Serve's autoscaler, which starts a replica at once
  (the handle pushes its queue to the controller immediately when the deployment has no replica). One wake
  call per deployment is in flight at a time, whatever the number of held requests.
- **Streaming clients** get their response headers at once and an SSE comment every ``keepalive_s`` while
  they wait (clients ignore comments; proxies see bytes and keep the connection), then the engine's stream.
  If the hold ends without a replica, the stream carries one error event (503-shaped) and ``[DONE]``.
- **A warm sibling.** For a virtual model (task routing), the policy already skips a candidate without
  replicas; with ``spill_to_warm`` a warm capable candidate serves and ``x-qwen-route-reason`` says the
  first one was scaled to zero (it is woken anyway, since that is where the demand belongs). Explicitly named
  models always wait for their own deployment.
- **Cold-start time**, from the first held request to the first byte relayed to a held client, is kept per
  deployment (``/v1/status``) and exported as ``qwen_router_cold_start_seconds``.

Nothing here holds a request for a deployment that cannot scale to zero: those keep the 503 of the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from serve.errors import OverloadedError, RouterError, engine_error, stream_error_for
from serve.router.facts import RequestFacts
from serve.router.policy import Decision
from serve.router.validate import request_timeout

if TYPE_CHECKING:  # pragma: no cover
    from serve.router.service import Prepared, RouterService

logger = logging.getLogger(__name__)

#: How often a held request looks for a registered replica (seconds).
POLL_S = 0.2
_COLD_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
Waker = Callable[[str], Awaitable[object]]


@dataclass
class _Episode:
    """One cold start of a deployment: from the first held request to the first byte relayed."""

    started: float
    ready_s: float | None = None
    first_byte_s: float | None = None


class ColdStart:
    """Held requests and wake calls for deployments that scale to zero.

    Args:
        fleet: The fleet config (``router.cold_start``, each deployment's ``autoscaling``).
        registry: The router's endpoint registry.
        metrics: The router's metrics (this registers its own on ``metrics.registry``); None in bare tests.
        waker: ``await waker(deployment)`` asks Ray Serve for a replica and returns once one answered (the
            ingress passes a call through the deployment's handle); None: no waking (held requests only wait).
    """

    def __init__(self, fleet: Any, registry: Any, metrics: Any = None, waker: Waker | None = None) -> None:
        self.spec = fleet.router.cold_start
        self.registry = registry
        self.waker = waker
        self.to_zero = {d.name for d in fleet.deployments if d.autoscaling is not None
                        and d.autoscaling.min_replicas == 0}
        self.held: dict[str, int] = dict.fromkeys(self.to_zero, 0)
        self._wakes: dict[str, asyncio.Task[None]] = {}
        self._episodes: dict[str, _Episode] = {}
        self.last: dict[str, dict[str, float | None]] = {}
        self.cold_starts: dict[str, int] = dict.fromkeys(self.to_zero, 0)
        self._metrics = metrics
        if metrics is not None:
            r = metrics.registry
            self.m_seconds = Histogram("qwen_router_cold_start_seconds", "Scale from zero: first held request to "
                                       "first byte relayed", ["model"], buckets=_COLD_BUCKETS, registry=r)
            self.m_count = Counter("qwen_router_cold_starts", "Scale-from-zero episodes", ["model"], registry=r)
            self.m_expired = Counter("qwen_router_held_expired", "Held requests answered 503 (bounds reached)",
                                     ["model", "bound"], registry=r)
            self.m_spills = Counter("qwen_router_cold_spills", "Requests a warm sibling served while the first "
                                    "candidate was scaled to zero", ["model"], registry=r)
            self.m_held = Gauge("qwen_router_held_requests", "Requests held for a deployment scaled to zero",
                                ["model"], registry=r)
            r.register(_ScaledToZeroCollector(self))

    # --- state ------------------------------------------------------------------------------------
    def scales_to_zero(self, name: str) -> bool:
        """Whether the deployment may be at zero replicas (``autoscaling.min_replicas: 0``)."""
        return name in self.to_zero

    def scaled_to_zero(self, name: str) -> bool:
        """Whether the deployment scales to zero and has no live replica now."""
        return name in self.to_zero and not self.registry.load(name).healthy_endpoints

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per scale-to-zero deployment: scaled to zero now, held requests, cold starts, the last one's times."""
        return {name: {"scaled_to_zero": self.scaled_to_zero(name), "held": self.held[name],
                       "waking": name in self._wakes, "cold_starts": self.cold_starts[name],
                       "last_cold_start": self.last.get(name)}
                for name in sorted(self.to_zero)}

    # --- decide -----------------------------------------------------------------------------------
    def decide(self, service: RouterService, facts: RequestFacts, model: Any, headers: Mapping[str, str],
               check_named: bool = True) -> Decision:
        """``service.decide`` that treats deployments scaled to zero as able to serve (after a cold start).

        Raises:
            RouterError: What ``service.decide`` raises when no deployment scaled to zero can take over.
        """
        try:
            decision = service.decide(facts, model, headers, check_named=check_named)
        except OverloadedError:
            cold = self._cold_decision(service, facts, model, headers)
            if cold is None:
                raise
            return cold
        return self._review(service, decision, facts)

    def _cold_decision(self, service: RouterService, facts: RequestFacts, model: Any,
                       headers: Mapping[str, str]) -> Decision | None:
        """The decision to hold for: the named deployment, or the task's first capable candidate, if cold."""
        chooser = service.chooser
        deployment, adapter, task = chooser.resolve_model(model)
        if deployment is not None:
            if not self.scaled_to_zero(deployment):
                return None
            return Decision(task="explicit", model=deployment, candidates=[deployment], adapter=adapter,
                            explicit=True, reason="explicit model (scaled to zero: held while a replica starts)")
        if not task:
            task = service.classifier.classify(facts, headers).task
        candidates = list(service.fleet.router.tasks[task].candidates) if task in service.fleet.router.tasks else []
        for name in candidates:
            if self.scaled_to_zero(name) and chooser.incapable(name, facts) is None:
                return Decision(task=task, model=name, candidates=candidates,
                                reason=f"task={task} -> {name} (scaled to zero: held while a replica starts)")
        return None

    def _review(self, service: RouterService, decision: Decision, facts: RequestFacts) -> Decision:
        """Wake capable candidates the policy skipped because they are scaled to zero; say so in the reason.

        Without ``spill_to_warm`` the request is held for the first such candidate instead.
        """
        if decision.explicit:
            return decision
        for name in decision.candidates:
            if name == decision.model:
                break
            if not self.scaled_to_zero(name) or service.chooser.incapable(name, facts) is not None:
                continue
            self.wake(name)
            if not self.spec.spill_to_warm:
                return Decision(task=decision.task, model=name, candidates=decision.candidates,
                                reason=f"task={decision.task} -> {name} (scaled to zero: held while a replica "
                                       "starts)")
            decision.reason = decision.reason.replace(f"{name}:down", f"{name}:scaled_to_zero (waking)")
            decision.reason += f"; warm sibling {decision.model} serves while {name} scales from zero"
            if self._metrics is not None:
                self.m_spills.labels(self._metrics.model_label(name)).inc()
            break
        return decision

    # --- dispatch ---------------------------------------------------------------------------------
    async def dispatch(self, service: RouterService, request: Request, p: Prepared, t0: float,
                       charge: Any = None) -> Response:
        """``service.dispatch``, holding the request first when its deployment is scaled to zero."""
        decision, body = p.decision, p.body
        name = decision.model
        if not self.scaled_to_zero(name):
            return await service.dispatch(request, p, t0, charge)
        if self.held[name] >= self.spec.max_held_requests:
            self._expired(name, "count")
            raise OverloadedError(f"Deployment `{name}` is starting from zero replicas and already holds "
                                  f"{self.held[name]} requests; retry later.", code="cold_start_queue_full",
                                  retry_after=self.spec.retry_after_s)
        hold_s = min(self.spec.max_wait_s, request_timeout(request.headers, service.limits))
        self.wake(name)
        if not body.get("stream"):
            with self._holding(name):
                ready = await _unless_disconnected(request, self._wait(name, time.monotonic() + hold_s))
            if ready is None:  # the client went away while held
                return Response(status_code=499)
            if not ready:
                self._expired(name, "time")
                raise self._timeout_error(name, hold_s)
            response = await service.dispatch(request, p, t0, charge)
            self._first_byte(name)
            return response
        headers = {"x-qwen-task": decision.task, "x-qwen-model": name, "cache-control": "no-cache",
                   "x-qwen-route-reason": decision.reason.encode("ascii", "replace").decode()[:300],
                   "x-qwen-cold-start": "held"}
        return StreamingResponse(self._held_stream(service, request, p, t0, charge, hold_s),
                                 media_type="text/event-stream", headers=headers)

    async def _held_stream(self, service: RouterService, request: Request, p: Prepared, t0: float, charge: Any,
                           hold_s: float) -> AsyncIterator[bytes]:
        """SSE comments while held, then the engine's stream (or one error event)."""
        name = p.decision.model
        deadline = time.monotonic() + hold_s
        rid = getattr(request.state, "request_id", "")
        path = request.url.path
        settled = False
        try:
            with self._holding(name):
                yield f": waiting for a replica of {name} (scaled to zero)\n\n".encode()
                ready = False
                while time.monotonic() < deadline:
                    ready = await self._wait(name, min(deadline, time.monotonic() + self.spec.keepalive_s))
                    if ready:
                        break
                    yield b": still waiting for a replica\n\n"
            if not ready:
                self._expired(name, "time")
                yield stream_error_for(path, self._timeout_error(name, hold_s), rid)
                return
            try:
                response = await service.dispatch(request, p, t0, charge)
            except RouterError as exc:
                yield stream_error_for(path, exc, rid)
                return
            settled = True  # dispatch settles the charge from here on
            if not isinstance(response, StreamingResponse):  # the engine refused it (a 4xx answer): as an event
                yield stream_error_for(path, engine_error(response.status_code, bytes(response.body)), rid)
                return
            first = True
            async for chunk in response.body_iterator:
                if first:
                    self._first_byte(name)
                    first = False
                yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
        finally:
            if not settled and charge is not None:
                charge.settle(0)

    # --- waiting and waking -----------------------------------------------------------------------
    def wake(self, name: str) -> None:
        """Ask Serve for a replica of ``name`` (one wake call per deployment at a time)."""
        if name not in self.to_zero:
            return
        if name not in self._episodes and self.scaled_to_zero(name):
            self._episodes[name] = _Episode(started=time.monotonic())
            self.cold_starts[name] += 1
            if self._metrics is not None:
                self.m_count.labels(self._metrics.model_label(name)).inc()
            logger.info("deployment %s is scaled to zero: waking it", name)
        task = self._wakes.get(name)
        if task is None or task.done():
            self._wakes[name] = asyncio.get_running_loop().create_task(self._wake(name))

    async def _wake(self, name: str) -> None:
        try:
            if self.waker is not None:
                await asyncio.wait_for(self.waker(name), timeout=self.spec.max_wait_s)
            with contextlib.suppress(Exception):
                await self.registry.refresh()  # find the new replica's record now, not at the next refresh
        except Exception:  # noqa: BLE001 - held requests time out on their own; the next request wakes again
            logger.warning("waking deployment %s failed", name, exc_info=True)
        finally:
            self._wakes.pop(name, None)

    async def _wait(self, name: str, deadline: float) -> bool:
        """Wait until ``name`` has a live replica; False when ``deadline`` (monotonic) passes first."""
        while not self.registry.load(name).healthy_endpoints:
            if time.monotonic() >= deadline:
                return False
            if name not in self._wakes:
                self.wake(name)
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        episode = self._episodes.get(name)
        if episode is not None and episode.ready_s is None:
            episode.ready_s = time.monotonic() - episode.started
        return True

    def _first_byte(self, name: str) -> None:
        episode = self._episodes.pop(name, None)
        if episode is None:
            return
        episode.first_byte_s = time.monotonic() - episode.started
        self.last[name] = {"ready_s": episode.ready_s, "first_token_s": episode.first_byte_s,
                           "at": time.time()}
        logger.info("deployment %s scaled from zero: replica in %.1fs, first byte after %.1fs", name,
                    episode.ready_s or 0.0, episode.first_byte_s)
        if self._metrics is not None:
            self.m_seconds.labels(self._metrics.model_label(name)).observe(episode.first_byte_s)

    @contextlib.contextmanager
    def _holding(self, name: str) -> Iterator[None]:
        self.held[name] += 1
        if self._metrics is not None:
            self.m_held.labels(self._metrics.model_label(name)).set(self.held[name])
        try:
            yield
        finally:
            self.held[name] -= 1
            if self._metrics is not None:
                self.m_held.labels(self._metrics.model_label(name)).set(self.held[name])

    def _expired(self, name: str, bound: str) -> None:
        if self._metrics is not None:
            self.m_expired.labels(self._metrics.model_label(name), bound).inc()

    def _timeout_error(self, name: str, hold_s: float) -> OverloadedError:
        return OverloadedError(f"Deployment `{name}` is starting from zero replicas and none was ready within "
                               f"{hold_s:.0f}s; retry later.", code="cold_start_timeout",
                               retry_after=self.spec.retry_after_s)


class _ScaledToZeroCollector(Collector):
    """``qwen_router_scaled_to_zero{model}``: 1 while a scale-to-zero deployment has no replica."""

    def __init__(self, cold: ColdStart) -> None:
        self._cold = cold

    def describe(self) -> Iterator[Metric]:
        """No static description."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Yield the gauge."""
        fam = GaugeMetricFamily("qwen_router_scaled_to_zero", "1 while a deployment is scaled to zero",
                                labels=["model"])
        for name in sorted(self._cold.to_zero):
            fam.add_metric([name], 1.0 if self._cold.scaled_to_zero(name) else 0.0)
        yield fam


async def _unless_disconnected(request: Request, work: Awaitable[bool]) -> bool | None:
    """Await ``work``, or cancel it and return None as soon as the client disconnects."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        return task.result() if task in done else None
    finally:
        for t in (task, watch):
            if not t.done():
                t.cancel()


async def _wait_disconnect(request: Request) -> None:
    while True:
        if (await request.receive())["type"] == "http.disconnect":
            return
