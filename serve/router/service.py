"""The router's request path: prepare (admit, parse, validate, decide), shape, dispatch (relay), settle.

:class:`RouterService` holds the collaborators (deployment chooser, classifier, endpoint registry, HTTP pool,
admission guard, metrics). Every handler starts with :meth:`RouterService.prepare`, the one preamble: admit,
parse, validate, read the :class:`~serve.router.facts.RequestFacts`, decide. ``/v1/route`` runs the same
preamble without dispatch, so the dry run cannot disagree with the real decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from serve.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RouterError,
    UpstreamError,
    UpstreamTimeoutError,
    engine_error,
    error_response_for,
    stream_error_for,
)
from serve.router.compat import ReasoningMirror, mirror_reasoning_body, upgrade_legacy_fields
from serve.router.defaults import apply_task_defaults
from serve.router.endpoints import POOLING_PATHS, PoolingPath
from serve.router.facts import RequestFacts, facts_of
from serve.router.metrics import RouterMetrics
from serve.router.policy import Decision, DeploymentChooser
from serve.router.replicas import ReplicaPicker, make_picker
from serve.router.responses import IdSniffer, StoredResponses
from serve.router.seams import Admission, TaskClassifier
from serve.router.upstream import Endpoint, EndpointRegistry
from serve.router.validate import request_timeout, validate_request
from serve.security.usage import TokenCharge

if TYPE_CHECKING:  # pragma: no cover
    from serve.config import FleetConfig

logger = logging.getLogger(__name__)

Kind = Literal["chat", "completions", "responses", "messages", "tokenize", "detokenize", "count_tokens"] | PoolingPath
T = TypeVar("T")
#: The engine path each request kind is relayed to (vLLM's own OpenAI and Anthropic endpoints).
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions",
                         "responses": "/v1/responses", "messages": "/v1/messages",
                         "tokenize": "/tokenize", "detokenize": "/detokenize",
                         "count_tokens": "/v1/messages/count_tokens",
                         # embeddings, pooling, classify, score, rerank: relayed to the path of the same name
                         **{p: p for p in POOLING_PATHS}}
#: Kinds that generate (token charges and draining refusals apply).
GENERATE: frozenset[str] = frozenset({"chat", "completions", "responses", "messages"})
#: Kinds whose body the per-task defaults (system prompt, sampling, thinking) know how to shape.
SHAPED: frozenset[str] = frozenset({"chat", "completions"})
#: Bytes of a non-streamed Responses answer searched for its id (it comes first).
SNIFF_HEAD = 4096
_CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ServerTimeoutError, ConnectionError)


def prompt_fingerprint(body: Mapping[str, Any]) -> tuple[str, int]:
    """A short hash and the byte length of the prompt, for logs that never hold prompt text."""
    prompt = body.get("messages") if "messages" in body else body.get("prompt", body.get("input"))
    raw = orjson.dumps(prompt)
    return hashlib.blake2b(raw, digest_size=6).hexdigest(), len(raw)


@dataclass
class Prepared:
    """A request after the preamble: admitted, parsed, validated, read and decided.

    Attributes:
        kind: The request kind (which engine path it goes to).
        body: The parsed body (shaped further before dispatch).
        facts: What the body says, read once.
        decision: Where it goes and why.
        key: The API key's name (None without admission).
        compat: Legacy fields rewritten for the engine (named in ``x-qwen-compat``).
        replica: The one replica the request must reach (a stored response's), or None.
        url: With ``replica``: the exact frontend URL that stores the response.
    """

    kind: str
    body: dict[str, Any]
    facts: RequestFacts
    decision: Decision
    key: str | None = None
    compat: list[str] = field(default_factory=list)
    replica: str | None = None
    url: str | None = None


class Lease:
    """One in-flight request on one engine replica: acquired when the connection opens, released once.

    Every exit of the request path (answer read, stream ended or broken, engine error, cancellation) calls
    :meth:`release`; only the first call counts, so the router's load figures can never drift.
    """

    __slots__ = ("registry", "endpoint", "url", "_held")

    def __init__(self, registry: EndpointRegistry, endpoint: Endpoint, url: str | None = None) -> None:
        self.registry = registry
        self.endpoint = endpoint
        #: The base URL the request went to (one of the replica's frontends, or its own app).
        self.url = url or endpoint.url
        registry.acquire(endpoint)
        self._held = True

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        if self._held:
            self._held = False
            self.registry.release(self.endpoint)


class RouterService:
    """Runs requests through the router's steps.

    Args:
        fleet: The fleet config.
        chooser: Chooses the deployment (task table, capability checks, spill-over).
        classifier: The task classifier.
        registry: Engine endpoints and load bookkeeping.
        metrics: The router's metrics.
        guard: Admission control (API keys, rate limits, input limits); None admits everything.
    """

    def __init__(self, fleet: FleetConfig, chooser: DeploymentChooser, classifier: TaskClassifier,
                 registry: EndpointRegistry, metrics: RouterMetrics, guard: Admission | None = None) -> None:
        self.fleet = fleet
        self.chooser = chooser
        self.classifier = classifier
        self.registry = registry
        self.metrics = metrics
        self.guard = guard
        self.session: aiohttp.ClientSession | None = None
        self.limits = fleet.security.limits
        self.draining = False
        self.pickers: dict[str, ReplicaPicker] = {d.name: make_picker(d.replica_routing) for d in fleet.deployments}
        self.stored = StoredResponses()
        #: Run-time LoRA adapters (``serve.router.adapters``), None when no deployment allows them.
        self.adapters: Any = None
        #: Chooses the deployment of embeddings / score / rerank requests (``serve.router.pooling``).
        self.pooling: Any = None
        #: Scale from zero: holds requests for a deployment at zero replicas (``serve.router.coldstart``).
        from serve.router.coldstart import ColdStart

        self.coldstart = ColdStart(fleet, registry, metrics)
        #: Headers every engine request carries: the fleet's engine secret (``serve.security.engine_secret``).
        self.engine_headers: dict[str, str] = {}

    # --- decide (shared with /v1/route) -----------------------------------------------------------
    def decide(self, facts: RequestFacts, model: Any, headers: Mapping[str, str],
               check_named: bool = True) -> Decision:
        """Classify (when the model is virtual) and choose a deployment.

        Args:
            facts: The request's facts.
            model: The body's ``model`` field.
            headers: Request headers (``x-qwen-task``).
            check_named: Check a named deployment's capabilities and load; False takes it as it is
                (``/tokenize``: counting a prompt that is too long is the point).

        Raises:
            RouterError: 400 (capabilities), 404 (unknown model), 503 (no capacity).
        """
        t0 = time.perf_counter()
        try:
            deployment, adapter, task = self.chooser.resolve_model(model)
            if deployment is not None:
                reason = self.chooser.check_named(deployment, facts) if check_named else "explicit model"
                header_task = headers.get("x-qwen-task", "")
                task_name = header_task if header_task in self.fleet.router.tasks else "explicit"
                return Decision(task=task_name, model=deployment, candidates=[deployment], reason=reason,
                                adapter=adapter, explicit=True)
            c = None
            if not task:
                c = self.classifier.classify(facts, headers)  # signals and language: read when shown only
                task, why = c.task, c.reason
            else:
                why = f"alias {model}"
            chosen, candidates, reason, spill = self.chooser.choose_deployment(task, facts)
            return Decision(task=task, model=chosen, candidates=candidates, reason=f"{why}; {reason}",
                            spilled=spill, classification=c)
        finally:
            self.metrics.decision.observe(time.perf_counter() - t0)

    async def prepare(self, request: Request, kind: str, *, charge: bool = True,
                      check_named: bool = True) -> Prepared:
        """The preamble of every handler: admit, parse, validate, read the facts, decide.

        Args:
            request: The HTTP request.
            kind: The request kind (``chat``, ``completions``, ``tokenize``, ``detokenize``; ``route`` is
                a dry run that validates as chat or completions by the body's shape).
            charge: Count the request against the key's request rate (False for ``/v1/route``).
            check_named: See :meth:`decide`.

        Raises:
            RouterError: Any refusal (draining 503, 401, 413, 429, 400, 404, 503).
        """
        if self.draining and (kind in GENERATE or kind in POOLING_PATHS):
            raise OverloadedError("The server is shutting down; retry on another instance.",
                                  code="draining", retry_after=5.0)
        raw = await request.body()
        key = await self.guard.admit(request, raw, charge=charge) if self.guard is not None else None
        body = parse_body(raw)
        if kind == "route":
            kind = "chat" if "messages" in body else "completions"
        validate_request(body, kind, self.limits)
        compat: list[str] = []
        if kind in GENERATE:
            compat = upgrade_legacy_fields(body)
            if compat:
                self.metrics.count_compat(compat)
        facts = facts_of(body, kind, request.headers)
        if kind in POOLING_PATHS and self.pooling is not None:
            return Prepared(kind, body, facts, self.pooling.decide(body, kind), key, compat)
        previous = body.get("previous_response_id") if kind == "responses" else None
        if previous:
            decision, replica, url = self._pinned(previous, "previous_response_id")
            return Prepared(kind, body, facts, decision, key, compat, replica, url)
        # A deployment scaled to zero counts as able to serve: the request is held while it starts.
        decision = self.coldstart.decide(self, facts, body.get("model"), request.headers, check_named=check_named)
        return Prepared(kind, body, facts, decision, key, compat)

    def _pinned(self, response_id: str, param: str | None = None) -> tuple[Decision, str, str]:
        """The decision for a follow-up of a stored response: its deployment and replica."""
        where = self.stored.where(response_id)
        if where is None:
            raise ModelNotFoundError(
                f"Response `{response_id[:64]}` is not known to this router. Stored responses live in the engine "
                "replica that created them; it may have restarted, or the response was created through another "
                "router replica.", param=param, code="response_not_found")
        deployment, replica, url = where
        return Decision(task="stored", model=deployment, candidates=[deployment], explicit=True,
                        reason=f"stored response -> replica {replica}"), replica, url

    # --- the request path --------------------------------------------------------------------------
    async def handle(self, request: Request, kind: Kind) -> Response:
        """Serve one chat or completions request end to end."""
        rid: str = request.state.request_id
        t0 = time.perf_counter()
        task: str | None = None
        model: str | None = None
        try:
            p = await self.prepare(request, kind)
            decision, body = p.decision, p.body
            task, model = decision.task, decision.model
            if decision.spilled:
                self.metrics.spillovers.labels(decision.spilled).inc()
            applied: list[str] = []
            if not decision.explicit and kind in SHAPED:
                # The chooser's capabilities, computed once (the spec's property rebuilds them on every read).
                applied = apply_task_defaults(body, self.fleet.router.tasks.get(decision.task),
                                              self.chooser.caps[decision.model])
            body["model"] = decision.engine_model
            charge = self.guard.charge(p.key, body, rid) if self.guard is not None and p.key is not None else None
            h, n = prompt_fingerprint(body)
            logger.info("request_id=%s kind=%s task=%s model=%s prompt_hash=%s prompt_bytes=%d stream=%s "
                        "defaults=%s", rid, kind, task, model, h, n, bool(body.get("stream")), ",".join(applied))
            try:
                # Held first while the deployment scales from zero, else straight to dispatch.
                response = await self.coldstart.dispatch(self, request, p, t0, charge)
                if self.guard is not None and p.key is not None:
                    response.headers.update(self.guard.rate_headers(p.key))
                if p.compat:
                    response.headers["x-qwen-compat"] = ", ".join(p.compat)
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

    async def handle_tokens(self, request: Request,
                            kind: Literal["tokenize", "detokenize", "count_tokens"]) -> Response:
        """``/tokenize`` and ``/detokenize``, answered by a replica of the named (or routed) model.

        The counts come from that engine's own tokenizer and chat template, as the prompt will be served. No
        task defaults are applied. A named deployment is asked without capability checks (counting a prompt
        that is too long is the point); a virtual model is routed like a generation request, among the
        candidates able to serve it. The request counts against the key's request rate, not its tokens.
        """
        t0 = time.perf_counter()
        try:
            p = await self.prepare(request, kind, check_named=False)
            p.body["model"] = p.decision.engine_model
            return await self.coldstart.dispatch(self, request, p, t0)
        except RouterError as exc:
            self.metrics.reject(_reject_reason(exc))
            raise

    async def handle_stored(self, request: Request, response_id: str, cancel: bool = False) -> Response:
        """``GET /v1/responses/{id}`` and ``POST /v1/responses/{id}/cancel``, relayed to the replica that
        stores the response (see :mod:`serve.router.responses`)."""
        assert self.session is not None, "router not started"
        rid: str = request.state.request_id
        try:
            if self.guard is not None:
                await self.guard.admit(request, b"")
            decision, replica, base = self._pinned(response_id)
            ep = next((e for e in self.registry.load(decision.model).endpoints if e.replica == replica), None)
            if ep is None:
                raise ModelNotFoundError(f"The engine replica that stored response `{response_id[:64]}` is gone.",
                                         code="response_not_found")
            lease = Lease(self.registry, ep, base)
            try:
                url = f"{base}/v1/responses/{response_id}" + ("/cancel" if cancel else "")
                if request.url.query:
                    url += "?" + request.url.query
                method = self.session.post if cancel else self.session.get
                async with method(url, headers={"x-request-id": rid, **self.engine_headers}) as resp:
                    data = await resp.read()
                    ctype = resp.headers.get("content-type", "application/json")
                    status = resp.status
                    retry_after = resp.headers.get("retry-after")
            except _CONNECT_ERRORS:
                raise OverloadedError("The engine replica that stores this response is unreachable; retry later.",
                                      code="deployment_unavailable", retry_after=5.0) from None
            finally:
                lease.release()
            headers = {"x-qwen-task": decision.task, "x-qwen-model": decision.model,
                       "x-qwen-route-reason": _ascii(decision.reason), "x-qwen-replica": ep.replica,
                       "x-qwen-replica-reason": "stored", "x-request-id": rid}
            if status >= 400:
                return _engine_refusal(request.url.path, status, data, retry_after, headers)
            return Response(data, status_code=status, media_type=ctype.split(";")[0], headers=headers)
        except RouterError as exc:
            self.metrics.reject(_reject_reason(exc))
            raise

    async def route(self, request: Request) -> dict[str, Any]:
        """``POST /v1/route``: the decision for a request, without generating (not counted as a request)."""
        return (await self.prepare(request, "route", charge=False)).decision.to_dict()

    async def dispatch(self, request: Request, p: Prepared, t0: float,
                       charge: TokenCharge | None = None) -> Response:
        """Send the request to an engine endpoint of the chosen deployment and relay the answer.

        ``charge`` (the key's token charge, if limited) is settled with the answer's real usage.
        """
        assert self.session is not None, "router not started"
        body, decision, kind = p.body, p.decision, p.kind
        payload = orjson.dumps(body)
        rid: str = request.state.request_id
        headers = {"content-type": "application/json", "x-request-id": rid, **self.engine_headers}
        # The request's deadline runs from its arrival (``t0``): time spent held for a cold start or queued
        # in the preamble counts against it, so a client's timeout means the same whatever happened first.
        deadline = time.monotonic() + request_timeout(request.headers, self.limits) - (time.perf_counter() - t0)
        connect = self._connect(p, payload, headers)
        try:  # a non-streamed answer only has headers when done: watch deadline and disconnect meanwhile
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                got = await (connect if body.get("stream") else _unless_disconnected(request, connect))
        except TimeoutError:
            raise UpstreamTimeoutError("The request timed out.", code="timeout") from None
        if got is None:  # client went away: closing the upstream connection aborted the engine request
            self.metrics.cancelled.labels(self.metrics.model_label(decision.model)).inc()
            return Response(status_code=499)
        lease, resp, outcome = got
        ep = lease.endpoint
        out_headers = {
            "x-qwen-task": decision.task, "x-qwen-model": decision.model,
            "x-qwen-route-reason": _ascii(decision.reason), "x-request-id": rid,
            "x-qwen-replica": ep.replica, "x-qwen-replica-reason": outcome,
        }
        if resp.status >= 400:
            if charge is not None:
                charge.settle(0)  # refused or failed by the engine: nothing was generated
            return await self._upstream_error(lease, resp, decision, out_headers, request.url.path)
        mirror = kind == "chat" and self.fleet.router.mirror_reasoning_content
        if body.get("stream"):
            out_headers["cache-control"] = "no-cache"
            sniffer = IdSniffer(self.stored, ep.deployment, ep.replica, lease.url) if kind == "responses" else None
            return StreamingResponse(self._relay(lease, resp, decision, t0, deadline, rid, charge,
                                                 ReasoningMirror() if mirror else None, sniffer,
                                                 path=request.url.path),
                                     media_type="text/event-stream", headers=out_headers)
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                data = await _read_unless_disconnected(request, resp)
        except TimeoutError:
            raise UpstreamTimeoutError("The request timed out.", code="timeout") from None
        finally:
            resp.release()
            lease.release()
        if data is None:  # client went away: the engine request was aborted by closing the connection
            self.metrics.cancelled.labels(self.metrics.model_label(decision.model)).inc()
            return Response(status_code=499)
        if charge is not None:
            charge.settle_body(data)
        if kind == "responses":
            self.stored.learn(data[:SNIFF_HEAD], ep.deployment, ep.replica, lease.url)
        if mirror:
            data = mirror_reasoning_body(data)
        elapsed = time.perf_counter() - t0
        self.metrics.e2e.labels(self.metrics.model_label(decision.model)).observe(elapsed)
        self.metrics.observe_request(decision.task, decision.model, resp.status)
        return Response(data, status_code=resp.status, media_type="application/json", headers=out_headers)

    async def _connect(self, p: Prepared, payload: bytes, headers: dict[str, str],
                       ) -> tuple[Lease, aiohttp.ClientResponse, str]:
        """Open the upstream request, failing over to another replica or candidate on connect errors."""
        assert self.session is not None
        decision = p.decision
        tried: list[Endpoint] = []
        # A run-time adapter goes only to replicas that confirmed loading it.
        blocked = self.adapters.blocked(decision) if self.adapters is not None else []
        for _ in range(4):
            if p.replica is not None:  # a stored response's follow-up: that replica or nothing
                ep = next((e for e in self.registry.load(decision.model).endpoints
                           if e.replica == p.replica and e not in tried), None)
                if ep is None:
                    raise ModelNotFoundError("The engine replica that stored the previous response is gone.",
                                             param="previous_response_id", code="response_not_found")
                outcome = "stored"
            else:
                ep, outcome = self.registry.pick_replica(decision.model, p.facts, exclude=[*tried, *blocked],
                                                         picker=self.pickers.get(decision.model))
            if ep is None:
                if decision.explicit or not self._spill_after_failure(decision, p.facts):
                    raise OverloadedError(f"No healthy replica of `{decision.model}` is reachable; retry later.",
                                          code="deployment_unavailable", retry_after=5.0)
                payload = orjson.dumps({**p.body, "model": decision.model})
                continue
            if p.replica is None:
                # The hard limit again, now atomically with counting the request in (no await in between).
                self.chooser.check_available(decision.model)
            self.metrics.replica_choices.labels(self.metrics.model_label(ep.deployment), outcome).inc()
            lease = Lease(self.registry, ep, p.url if p.replica is not None else ep.target())
            try:
                resp = await self.session.post(lease.url + PATHS[p.kind], data=payload, headers=headers)
                return lease, resp, outcome
            except BaseException as exc:
                lease.release()
                if not isinstance(exc, _CONNECT_ERRORS):
                    raise  # cancelled (deadline, disconnect): the connection is closed, the engine aborts
                ep.mark_down()
                tried.append(ep)
                self.metrics.spillovers.labels("connect_error").inc()
                logger.warning("request_id=%s engine %s replica %s unreachable; failing over",
                               headers["x-request-id"], ep.deployment, ep.replica)
        raise OverloadedError("No engine replica could be reached; retry later.", code="deployment_unavailable",
                              retry_after=5.0)

    def _spill_after_failure(self, decision: Decision, facts: RequestFacts) -> bool:
        """Re-choose after every replica of the decided deployment failed (the chooser skips it now)."""
        try:
            model, candidates, reason, _ = self.chooser.choose_deployment(decision.task, facts)
        except RouterError:
            return False
        if model == decision.model:
            return False
        decision.model, decision.reason, decision.spilled = model, reason + " (after connect failure)", "unhealthy"
        return True

    async def _upstream_error(self, lease: Lease, resp: aiohttp.ClientResponse, decision: Decision,
                              out_headers: dict[str, str], path: str) -> Response:
        """Answer an engine's error (see :func:`serve.errors.engine_error`): a 4xx in the shape of the router's
        ``path``, with the ``x-qwen-*`` headers; anything else raised (502, or 503 with ``Retry-After``)."""
        ep = lease.endpoint
        try:
            data = await resp.read()
        finally:
            resp.release()
            lease.release()
        if resp.status >= 500 or resp.status in (401, 403):
            logger.error("request_id=%s engine %s answered %d", out_headers["x-request-id"], ep.deployment,
                         resp.status)
        answer = _engine_refusal(path, resp.status, data, resp.headers.get("retry-after"), out_headers)
        self.metrics.observe_request(decision.task, decision.model, resp.status)  # a failure raised above is
        return answer                                                              # counted by its handler

    async def _relay(self, lease: Lease, resp: aiohttp.ClientResponse, decision: Decision, t0: float,
                     deadline: float, rid: str, charge: TokenCharge | None = None,
                     mirror: ReasoningMirror | None = None, sniffer: IdSniffer | None = None,
                     path: str = "/v1/chat/completions") -> AsyncIterator[bytes]:
        """Relay the engine's SSE bytes as they arrive; errors end the stream with one error event in the shape
        of ``path``'s clients (:func:`serve.errors.stream_error_for`)."""
        ep = lease.endpoint
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
                    if sniffer is not None:
                        sniffer.feed(chunk)
                    if mirror is None:
                        yield chunk
                    elif out := mirror.feed(chunk):
                        yield out
            if mirror is not None and (rest := mirror.flush()):
                yield rest
            finished = True
        except TimeoutError:
            yield stream_error_for(path, UpstreamTimeoutError("The request timed out.", code="timeout"), rid)
        except (aiohttp.ClientError, ConnectionError):
            logger.warning("request_id=%s engine %s stream broke", rid, ep.deployment)
            ep.mark_down(1.0)
            yield stream_error_for(path, UpstreamError("The model engine stopped while streaming.",
                                                       code="engine_error"), rid)
        finally:
            resp.close() if not finished else resp.release()
            lease.release()
            if charge is not None:
                charge.settle_stream()  # what was streamed, also when the stream broke or timed out
            if not finished:
                self.metrics.cancelled.labels(model_label).inc()
            self.metrics.e2e.labels(model_label).observe(time.perf_counter() - t0)
            self.metrics.observe_request(decision.task, decision.model, 200)


def _engine_refusal(path: str, status: int, data: bytes, retry_after: str | None,
                    headers: dict[str, str]) -> Response:
    """An engine's error answer (:func:`serve.errors.engine_error`): a client mistake (4xx) answered in the shape
    of ``path``'s clients with ``headers``; anything else (engine failure, overload, a refused engine secret)
    raised, for the handler to answer and count."""
    err = engine_error(status, data, retry_after)
    if err.status >= 500:
        raise err
    answer = error_response_for(path, err, headers.get("x-request-id"))
    answer.headers.update(headers)
    return answer


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
