"""The router's request path: parse, admit, classify, choose, shape, dispatch (relay).

:class:`RouterService` holds the collaborators (policy, classifier, endpoint registry, HTTP pool, guard,
metrics) and runs one request through the steps of ARCHITECTURE.md. ``/v1/route`` calls :meth:`decide`, the
same code without dispatch, so the dry run cannot disagree with the real decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, Literal, TypeVar

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from serve.router.compat import ReasoningMirror, mirror_reasoning_body, upgrade_legacy_fields
from serve.router.defaults import apply_task_defaults
from serve.router.metrics import RouterMetrics
from serve.router.policy import Decision, RoutingPolicy
from serve.router.protocol import (
    InvalidRequestError,
    OverloadedError,
    RouterError,
    UpstreamError,
    UpstreamTimeoutError,
    sse_error,
)
from serve.router.upstream import Endpoint, EndpointRegistry
from serve.router.validate import request_timeout, validate_body, validate_token_body
from serve.security.usage import TokenCharge

logger = logging.getLogger(__name__)

Kind = Literal["chat", "completions", "tokenize", "detokenize"]
T = TypeVar("T")
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions",
                         "tokenize": "/tokenize", "detokenize": "/detokenize"}
_CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ServerTimeoutError, ConnectionError)


def prompt_fingerprint(body: Mapping[str, Any]) -> tuple[str, int]:
    """A short hash and the byte length of the prompt, for logs that never hold prompt text."""
    raw = orjson.dumps(body.get("messages") if "messages" in body else body.get("prompt"))
    return hashlib.blake2b(raw, digest_size=6).hexdigest(), len(raw)


class RouterService:
    """Runs requests through the router's steps.

    Args:
        fleet: The fleet config.
        policy: The routing policy (task table, capability checks, spill-over).
        classifier: Task classifier with ``classify(body, headers)``.
        registry: Engine endpoints and load bookkeeping.
        metrics: The router's metrics.
        guard: Admission control (API keys, rate limits, input limits) with ``admit(request, raw)`` and
            ``charge(key, body, request_id)``; None admits everything.
    """

    def __init__(self, fleet: Any, policy: RoutingPolicy, classifier: Any, registry: EndpointRegistry,
                 metrics: RouterMetrics, guard: Any = None) -> None:
        self.fleet = fleet
        self.policy = policy
        self.classifier = classifier
        self.registry = registry
        self.metrics = metrics
        self.guard = guard
        self.session: aiohttp.ClientSession | None = None
        self.limits = fleet.security.limits
        self.draining = False
        # HOOK(autoscale): scale from zero (serve.router.coldstart) and the engine secret header
        # (serve.security.engine_secret); create_app sets the waker and the header.
        from serve.router.coldstart import ColdStart

        self.coldstart = ColdStart(fleet, registry, metrics)
        self.engine_headers: dict[str, str] = {}
        from serve.router.replicas import make_policy

        self.replica_policies = {
            d.name: make_policy(d.replica_routing.policy, {"load_guard": d.replica_routing.load_guard,
                                                           "slack": d.replica_routing.slack}
                                if d.replica_routing.policy == "prefix_affinity" else None)
            for d in fleet.deployments
        }

    # --- decide (shared with /v1/route) -----------------------------------------------------------
    def decide(self, body: dict[str, Any], headers: Mapping[str, str], check_explicit: bool = True) -> Decision:
        """Classify (when the model is virtual) and choose a deployment for ``body``.

        ``check_explicit=False`` takes a named deployment as it is, without capability checks (``/tokenize``).

        Raises:
            RouterError: 400 (capabilities), 404 (unknown model), 503 (no capacity).
        """
        t0 = time.perf_counter()
        try:
            deployment, adapter, task = self.policy.resolve_model(body.get("model"))
            if deployment is not None:
                reason = self.policy.check_explicit(deployment, body) if check_explicit else "explicit model"
                header_task = headers.get("x-qwen-task", "")
                task_name = header_task if header_task in self.fleet.router.tasks else "explicit"
                return Decision(task=task_name, model=deployment, candidates=[deployment], reason=reason,
                                adapter=adapter, explicit=True)
            signals: list[dict[str, Any]] = []
            language = None
            if not task:
                c = self.classifier.classify(body, headers)
                task, language = c.task, c.language
                signals = [{"name": s.name, "task": s.task, "weight": round(s.weight, 3), "detail": s.detail}
                           for s in c.signals]
                why = c.reason
            else:
                why = f"alias {body.get('model')}"
            model, candidates, reason, spill = self.policy.choose(task, body)
            return Decision(task=task, model=model, candidates=candidates, reason=f"{why}; {reason}",
                            signals=signals, language=language, spilled=spill)
        finally:
            self.metrics.decision.observe(time.perf_counter() - t0)

    # --- the request path --------------------------------------------------------------------------
    async def handle(self, request: Request, kind: Kind) -> Response:
        """Serve one chat or completions request end to end."""
        rid: str = request.state.request_id
        t0 = time.perf_counter()
        task: str | None = None
        model: str | None = None
        try:
            if self.draining:
                raise OverloadedError("The server is shutting down; retry on another instance.",
                                      code="draining", retry_after=5.0)
            raw = await request.body()
            key = await self.guard.admit(request, raw) if self.guard is not None else None
            body = parse_body(raw)
            validate_body(body, kind, self.limits)
            compat = upgrade_legacy_fields(body)
            if compat:
                self.metrics.count_compat(compat)
            decision = self.coldstart.decide(self, body, request.headers)  # HOOK(autoscale): scaled to zero
            task, model = decision.task, decision.model
            if decision.spilled:
                self.metrics.spillovers.labels(decision.spilled).inc()
            applied: list[str] = []
            if not decision.explicit:
                spec = self.policy.specs[decision.model]
                applied = apply_task_defaults(body, self.fleet.router.tasks.get(decision.task), spec.capabilities)
            body["model"] = decision.engine_model
            charge = self.guard.charge(key, body, rid) if self.guard is not None and key is not None else None
            h, n = prompt_fingerprint(body)
            logger.info("request_id=%s kind=%s task=%s model=%s prompt_hash=%s prompt_bytes=%d stream=%s "
                        "defaults=%s", rid, kind, task, model, h, n, bool(body.get("stream")), ",".join(applied))
            try:
                # HOOK(autoscale): holds the request while its deployment scales from zero, else self.dispatch
                response = await self.coldstart.dispatch(self, request, body, decision, kind, t0, charge)
                if self.guard is not None and key is not None:
                    response.headers.update(self.guard.rate_headers(key))
                if compat:
                    response.headers["x-qwen-compat"] = ", ".join(compat)
                return response
            except RouterError:
                if charge is not None:
                    charge.settle(0)  # no engine answered: give the tokens back
                raise
        except RouterError as exc:
            self.metrics.reject(_reject_reason(exc))
            self.metrics.observe_request(task, model, exc.status)
            logger.info("request_id=%s rejected status=%d code=%s", rid, exc.status, exc.code)
            raise

    async def handle_tokens(self, request: Request, kind: Literal["tokenize", "detokenize"]) -> Response:
        """``/tokenize`` and ``/detokenize``, answered by a replica of the named (or routed) model.

        The counts come from that engine's own tokenizer and chat template, as the prompt will be served. No
        task defaults are applied. A named deployment is asked without capability checks (counting a prompt
        that is too long is the point); a virtual model is routed like a generation request, among the
        candidates able to serve it. The request counts against the key's request rate, not its tokens.
        """
        t0 = time.perf_counter()
        try:
            raw = await request.body()
            if self.guard is not None:
                await self.guard.admit(request, raw)
            body = parse_body(raw)
            validate_token_body(body, kind, self.limits)
            # HOOK(autoscale): a deployment scaled to zero holds the request (serve.router.coldstart)
            decision = self.coldstart.decide(self, body, request.headers, check_explicit=False)
            body["model"] = decision.engine_model
            return await self.coldstart.dispatch(self, request, body, decision, kind, t0)
        except RouterError as exc:
            self.metrics.reject(_reject_reason(exc))
            raise

    async def dispatch(self, request: Request, body: dict[str, Any], decision: Decision, kind: Kind,
                       t0: float, charge: TokenCharge | None = None) -> Response:
        """Send the request to an engine endpoint of the chosen deployment and relay the answer.

        ``charge`` (the key's token charge, if limited) is settled with the answer's real usage.
        """
        assert self.session is not None, "router not started"
        payload = orjson.dumps(body)
        rid: str = request.state.request_id
        headers = {"content-type": "application/json", "x-request-id": rid, **self.engine_headers}  # HOOK(autoscale)
        deadline = time.monotonic() + request_timeout(request.headers, self.limits)
        connect = self._connect(decision, kind, payload, headers, body, request.headers)
        try:  # a non-streamed answer only has headers when done: watch deadline and disconnect meanwhile
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                got = await (connect if body.get("stream") else _unless_disconnected(request, connect))
        except TimeoutError:
            raise UpstreamTimeoutError("The request timed out.", code="timeout") from None
        if got is None:  # client went away: closing the upstream connection aborted the engine request
            self.metrics.cancelled.labels(self.metrics.model_label(decision.model)).inc()
            return Response(status_code=499)
        ep, resp, outcome = got
        out_headers = {
            "x-qwen-task": decision.task, "x-qwen-model": decision.model,
            "x-qwen-route-reason": _ascii(decision.reason), "x-request-id": rid,
            "x-qwen-replica": ep.replica, "x-qwen-replica-reason": outcome,
        }
        if resp.status >= 400:
            if charge is not None:
                charge.settle(0)  # refused or failed by the engine: nothing was generated
            return await self._upstream_error(ep, resp, decision, out_headers)
        mirror = kind == "chat" and self.fleet.router.mirror_reasoning_content
        if body.get("stream"):
            out_headers["cache-control"] = "no-cache"
            return StreamingResponse(self._relay(ep, resp, decision, t0, deadline, rid, charge,
                                                 ReasoningMirror() if mirror else None),
                                     media_type="text/event-stream", headers=out_headers)
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                data = await _read_unless_disconnected(request, resp)
        except TimeoutError:
            raise UpstreamTimeoutError("The request timed out.", code="timeout") from None
        finally:
            resp.release()
            self.registry.release(ep)
        if data is None:  # client went away: the engine request was aborted by closing the connection
            self.metrics.cancelled.labels(self.metrics.model_label(decision.model)).inc()
            return Response(status_code=499)
        if charge is not None:
            charge.settle_body(data)
        if mirror:
            data = mirror_reasoning_body(data)
        elapsed = time.perf_counter() - t0
        self.metrics.e2e.labels(self.metrics.model_label(decision.model)).observe(elapsed)
        self.metrics.observe_request(decision.task, decision.model, resp.status)
        return Response(data, status_code=resp.status, media_type="application/json", headers=out_headers)

    async def _connect(self, decision: Decision, kind: Kind, payload: bytes, headers: dict[str, str],
                       body: dict[str, Any], request_headers: Mapping[str, str] | None = None,
                       ) -> tuple[Endpoint, aiohttp.ClientResponse, str]:
        """Open the upstream request, failing over to another replica or candidate on connect errors."""
        assert self.session is not None
        tried: list[Endpoint] = []
        for _ in range(4):
            ep, outcome = self.registry.pick(decision.model, exclude=tried,
                                             policy=self.replica_policies.get(decision.model), body=body,
                                             headers=request_headers)
            if ep is None:
                if decision.explicit or not self._spill_after_failure(decision, body):
                    raise OverloadedError(f"No healthy replica of `{decision.model}` is reachable; retry later.",
                                          code="deployment_unavailable", retry_after=5.0)
                payload = orjson.dumps({**body, "model": decision.model})
                continue
            self.metrics.replica_choices.labels(self.metrics.model_label(ep.deployment), outcome).inc()
            self.registry.acquire(ep)
            try:
                resp = await self.session.post(ep.url + PATHS[kind], data=payload, headers=headers)
                return ep, resp, outcome
            except BaseException as exc:
                self.registry.release(ep)
                if not isinstance(exc, _CONNECT_ERRORS):
                    raise  # cancelled (deadline, disconnect): the connection is closed, the engine aborts
                ep.mark_down()
                tried.append(ep)
                self.metrics.spillovers.labels("connect_error").inc()
                logger.warning("request_id=%s engine %s replica %s unreachable; failing over",
                               headers["x-request-id"], ep.deployment, ep.replica)
        raise OverloadedError("No engine replica could be reached; retry later.", code="deployment_unavailable",
                              retry_after=5.0)

    def _spill_after_failure(self, decision: Decision, body: dict[str, Any]) -> bool:
        """Re-choose after every replica of the decided deployment failed (the policy skips it now)."""
        try:
            model, candidates, reason, _ = self.policy.choose(decision.task, body)
        except RouterError:
            return False
        if model == decision.model:
            return False
        decision.model, decision.reason, decision.spilled = model, reason + " (after connect failure)", "unhealthy"
        return True

    async def _upstream_error(self, ep: Endpoint, resp: aiohttp.ClientResponse, decision: Decision,
                              out_headers: dict[str, str]) -> Response:
        try:
            data = await resp.read()
        finally:
            resp.release()
            self.registry.release(ep)
        self.metrics.observe_request(decision.task, decision.model, resp.status)
        if resp.status < 500:
            return Response(data, status_code=resp.status, media_type="application/json", headers=out_headers)
        logger.error("request_id=%s engine %s answered %d", out_headers["x-request-id"], ep.deployment,
                     resp.status)
        self.metrics.reject("upstream")
        raise UpstreamError("The model engine failed to process the request.", code="engine_error")

    async def _relay(self, ep: Endpoint, resp: aiohttp.ClientResponse, decision: Decision, t0: float,
                     deadline: float, rid: str, charge: TokenCharge | None = None,
                     mirror: ReasoningMirror | None = None) -> AsyncIterator[bytes]:
        """Relay the engine's SSE bytes as they arrive; errors become one SSE error event."""
        model_label = self.metrics.model_label(decision.model)
        first = True
        finished = False
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                async for chunk in resp.content.iter_any():
                    if first:
                        self.metrics.ttft.labels(model_label).observe(time.perf_counter() - t0)
                        first = False
                    if charge is not None:
                        charge.feed(chunk)
                    if mirror is None:
                        yield chunk
                    elif out := mirror.feed(chunk):
                        yield out
            if mirror is not None and (rest := mirror.flush()):
                yield rest
            finished = True
        except TimeoutError:
            yield sse_error(UpstreamTimeoutError("The request timed out.", code="timeout"), rid)
            yield b"data: [DONE]\n\n"
        except (aiohttp.ClientError, ConnectionError):
            logger.warning("request_id=%s engine %s stream broke", rid, ep.deployment)
            ep.mark_down(1.0)
            yield sse_error(UpstreamError("The model engine stopped while streaming.", code="engine_error"), rid)
            yield b"data: [DONE]\n\n"
        finally:
            resp.close() if not finished else resp.release()
            self.registry.release(ep)
            if charge is not None:
                charge.settle_stream()  # what was streamed, also when the stream broke or timed out
            if not finished:
                self.metrics.cancelled.labels(model_label).inc()
            self.metrics.e2e.labels(model_label).observe(time.perf_counter() - t0)
            self.metrics.observe_request(decision.task, decision.model, 200)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse a JSON object body or raise a 400 naming the problem."""
    if not raw:
        raise InvalidRequestError("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON ({_json_problem(exc)}).",
                                  code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return body


def _json_problem(exc: Exception) -> str:
    msg = str(exc)
    return msg.split(":", 1)[0][:80] if msg else "parse error"


async def _read_unless_disconnected(request: Request, resp: aiohttp.ClientResponse) -> bytes | None:
    """Read the whole upstream body, or return None as soon as the client disconnects."""
    read = asyncio.ensure_future(resp.read())
    watch = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({read, watch}, return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            return read.result()
        resp.close()  # the engine sees the connection drop and aborts the request
        return None
    finally:
        for t in (read, watch):
            if not t.done():
                t.cancel()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await ``work``, or cancel it and return None as soon as the client disconnects."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        return None
    finally:
        for t in (task, watch):
            if not t.done():
                t.cancel()
        if not task.done():
            with contextlib.suppress(BaseException):
                await task


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:300]


def _reject_reason(exc: RouterError) -> str:
    return {401: "auth", 403: "auth", 404: "not_found", 408: "timeout", 429: "rate_limit", 502: "upstream",
            503: "overloaded"}.get(exc.status, "invalid")
