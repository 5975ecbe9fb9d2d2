"""``create_app``: the router's FastAPI app, wired from a fleet config and injected collaborators.

Routes (all OpenAI-shaped): ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/route`` (the routing decision without generating), ``GET /health`` (liveness), ``GET /ready``
(every deployment has a live engine endpoint), ``GET /metrics`` (Prometheus), ``GET /v1/status``.

The handlers are thin: they hand the request to :class:`serve.router.service.RouterService`. Request bodies
are read as bytes and parsed once with orjson (no pydantic model on the hot path); the OpenAPI schema still
documents them for clients and fuzzers.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import InvalidRequestError, ModelNotFoundError, RouterError, error_response_for
from serve.router.adapters import register_adapter_routes
from serve.router.endpoints import unknown_path_error
from serve.router.fastpath import DirectLaneMiddleware
from serve.router.metrics import RouterMetrics
from serve.router.policy import DeploymentChooser
from serve.router.pooling import register_pooling_routes
from serve.router.protocol import ErrorResponse
from serve.router.seams import Admission, TaskClassifier
from serve.router.service import RouterService
from serve.router.tokens import TokenCounter
from serve.router.upstream import EndpointRegistry, RegistryRefresher, make_session

if TYPE_CHECKING:  # pragma: no cover
    from serve.config import FleetConfig

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 408, 413, 429, 502, 503)
}
_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


class RequestIdMiddleware:
    """Reuse ``x-request-id`` or make one; expose it on ``request.state`` and the response headers.

    A pure ASGI middleware (not ``BaseHTTPMiddleware``), so streaming and disconnects pass through untouched.
    """

    def __init__(self, app: ASGIApp, echo_header: bool = True) -> None:
        self.app = app
        # Under Ray Serve the replica already echoes x-request-id (the same id it put in the request headers).
        self.echo_header = echo_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
                break
        if not rid or not rid.isprintable():
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        raw = rid.encode()

        if not self.echo_header:
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", raw))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def build_classifier(fleet: FleetConfig) -> TaskClassifier:
    """The fleet's task classifier: its tasks, default task and ``router.classifier`` options.

    The running router and ``qwen-serve route --local`` both build it here, so the dry run classifies
    exactly as the stack does.
    """
    from serve.router.classify import Classifier

    return Classifier(tasks=tuple(fleet.router.tasks), default_task=fleet.router.default_task,
                      options=fleet.router.classifier or None)


def build_service(fleet: FleetConfig, registry: EndpointRegistry, *, classifier: TaskClassifier | None = None,
                  guard: Admission | None = None) -> RouterService:
    """Wire the router's request path from a fleet config (no HTTP app, no I/O)."""
    metrics = RouterMetrics([d.name for d in fleet.deployments], fleet.router.tasks)
    metrics.watch_replicas(registry.endpoints)
    chooser = DeploymentChooser(fleet, registry, TokenCounter())
    return RouterService(fleet, chooser, classifier or build_classifier(fleet), registry, metrics, guard)


def create_app(
    fleet: FleetConfig,
    registry: EndpointRegistry,
    *,
    classifier: TaskClassifier | None = None,
    guard: Admission | None = None,
    refresh_interval_s: float = 1.0,
    echo_request_id: bool = True,
    waker: Any = None,
    engine_secret: str | None = None,
    autoscale_reader: Any = None,
) -> FastAPI:
    """Build the router app.

    Args:
        fleet: The fleet config.
        registry: Where the engine endpoints are (``RayKVRegistry`` in the stack, ``StaticRegistry`` in tests).
        classifier: Task classifier; defaults to :func:`build_classifier`.
        guard: Admission control (API keys, rate limits); defaults to one built from ``fleet.security``.
        refresh_interval_s: How often the endpoint table is refreshed.
        echo_request_id: Add ``x-request-id`` to responses (off under Ray Serve, which adds it itself).
        waker: ``await waker(deployment)`` asks Ray Serve for a replica of a deployment scaled to zero.
        engine_secret: Sent to the engines with every request (``serve.security.engine_secret``).
        autoscale_reader: Returns the autoscaling policy's records (``serve.router.autoscale_view``).

    Returns:
        The FastAPI app. Its ``state.service`` is the :class:`RouterService`.
    """
    if guard is None:
        from serve.security import Guard

        guard = Guard.from_fleet(fleet)
    service = build_service(fleet, registry, classifier=classifier, guard=guard)
    refresher = RegistryRefresher(registry, refresh_interval_s)
    # Waking deployments scaled to zero, the engine secret and the autoscaling view (serve.router.coldstart,
    # serve.security.engine_secret, serve.router.autoscale_view).
    from serve.router.autoscale_view import AutoscaleView
    from serve.security.engine_secret import HEADER as ENGINE_SECRET_HEADER

    service.coldstart.waker = waker
    if engine_secret:
        service.engine_headers[ENGINE_SECRET_HEADER] = engine_secret
    autoscale = AutoscaleView(fleet, registry, service.metrics, autoscale_reader)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.session = make_session()
        await refresher.start()
        await autoscale.start()
        try:
            yield
        finally:
            await autoscale.stop()
            await refresher.stop()
            await service.session.close()

    app = FastAPI(title="qwen-serve router", version="0.1.0", lifespan=lifespan)
    app.state.service = service
    app.state.autoscale = autoscale
    # The generate endpoints skip FastAPI's routing (serve/router/fastpath.py), inside the two middlewares below.
    app.add_middleware(DirectLaneMiddleware, service=service)
    guard.install(app)  # body-size limit, inside the request-id middleware
    app.add_middleware(RequestIdMiddleware, echo_header=echo_request_id)
    _install_error_handlers(app)
    _install_routes(app, service)
    # hook(apisurface): pooling endpoints and run-time LoRA admin (serve/router/pooling.py, adapters.py)
    register_pooling_routes(app, service)
    register_adapter_routes(app, service)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    # Errors come in the shape the path's clients parse: OpenAI's, or Anthropic's on /v1/messages.
    @app.exception_handler(RouterError)
    async def _router_error(request: Request, exc: RouterError) -> Response:
        return error_response_for(request.url.path, exc, _rid(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        param = ".".join(str(p) for p in errs[0]["loc"][1:]) if errs else None
        return error_response_for(request.url.path,
                                  InvalidRequestError("Invalid request parameters.", param=param or None),
                                  _rid(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        err = RouterError(str(exc.detail) if exc.status_code < 500 else "Internal server error",
                          status=exc.status_code, code=str(exc.status_code))
        err.err_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        if exc.status_code in (404, 405) and exc.detail in ("Not Found", "Method Not Allowed"):
            # an unknown path or method gets a message naming it (serve/router/endpoints.py)
            allow = (exc.headers or {}).get("allow")
            err = unknown_path_error(request.method, request.url.path, exc.status_code, allow)
        return error_response_for(request.url.path, err, _rid(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("request_id=%s unexpected error", _rid(request))
        return error_response_for(request.url.path, exc, _rid(request))


def _install_routes(app: FastAPI, service: RouterService) -> None:
    fleet = service.fleet

    @app.post("/v1/chat/completions", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def chat(request: Request) -> Response:
        return await service.handle(request, "chat")

    @app.post("/v1/completions", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def completions(request: Request) -> Response:
        return await service.handle(request, "completions")

    @app.post("/v1/responses", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def responses(request: Request) -> Response:
        return await service.handle(request, "responses")

    @app.get("/v1/responses/{response_id}", responses=_ERRORS)
    async def retrieve_response(request: Request, response_id: str) -> Response:
        return await service.handle_stored(request, response_id)

    @app.post("/v1/responses/{response_id}/cancel", responses=_ERRORS)
    async def cancel_response(request: Request, response_id: str) -> Response:
        return await service.handle_stored(request, response_id, cancel=True)

    @app.post("/v1/messages", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def messages(request: Request) -> Response:
        return await service.handle(request, "messages")

    @app.post("/v1/messages/count_tokens", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def count_tokens(request: Request) -> Response:
        return await service.handle_tokens(request, "count_tokens")

    @app.post("/tokenize", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def tokenize(request: Request) -> Response:
        return await service.handle_tokens(request, "tokenize")

    @app.post("/detokenize", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def detokenize(request: Request) -> Response:
        return await service.handle_tokens(request, "detokenize")

    @app.post("/v1/route", responses=_ERRORS, openapi_extra=_BODY_DOC)
    async def route(request: Request) -> Response:
        return JSONResponse(await service.route(request))

    @app.get("/v1/models", responses=_ERRORS)
    async def models(request: Request) -> Response:
        if service.guard is not None:
            await service.guard.admit(request, b"", charge=False)
        now = int(time.time())
        data = []
        for mid in service.chooser.model_ids():
            meta = _model_meta(fleet, service, mid)
            data.append({"id": mid, "object": "model", "created": now, "owned_by": "qwen-serve", **meta})
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/models/{model_id:path}", responses=_ERRORS)
    async def model(request: Request, model_id: str) -> Response:
        if service.guard is not None:
            await service.guard.admit(request, b"", charge=False)
        if model_id not in service.chooser.model_ids():
            raise ModelNotFoundError(f"The model `{model_id}` does not exist.", param="model",
                                     code="model_not_found")
        meta = _model_meta(fleet, service, model_id)
        return JSONResponse({"id": model_id, "object": "model", "created": int(time.time()),
                             "owned_by": "qwen-serve", **meta})

    @app.get("/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        status = {d.name: len(service.registry.load(d.name).healthy_endpoints) for d in fleet.deployments}
        # HOOK(autoscale): a deployment scaled to zero is ready (a request wakes it)
        cold = [n for n, c in status.items() if c == 0 and service.coldstart.scales_to_zero(n)]
        ok = all(n > 0 or name in cold for name, n in status.items()) and not service.draining
        return JSONResponse({"ready": ok, "deployments": status, "scaled_to_zero": cold,
                             "draining": service.draining}, status_code=200 if ok else 503)

    @app.get("/v1/status")
    async def status(request: Request) -> Response:
        # Internal engine addresses: localhost (the CLI) or a valid key only.
        local = request.client is not None and request.client.host in ("127.0.0.1", "::1", "localhost")
        if service.guard is not None and not local:
            await service.guard.admit(request, b"", charge=False)
        return JSONResponse({"endpoints": service.registry.snapshot(), "draining": service.draining,
                             # HOOK(autoscale): replicas, desired, signal; held requests and cold starts
                             "autoscaling": request.app.state.autoscale.snapshot(),
                             "cold_start": service.coldstart.snapshot()})

    @app.post("/admin/drain")
    async def drain(request: Request) -> Response:
        if request.client is None or request.client.host not in ("127.0.0.1", "::1", "localhost"):
            raise RouterError("Drain is only accepted from localhost.", status=403, code="forbidden")
        service.draining = True
        inflight = sum(service.registry.load(d.name).ongoing for d in fleet.deployments)
        return JSONResponse({"draining": True, "inflight": inflight})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if service.guard is not None and not fleet.security.metrics_public:
            await service.guard.admit(request, b"", charge=False)
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


def _model_meta(fleet: FleetConfig, service: RouterService, mid: str) -> dict[str, Any]:
    spec = service.chooser.specs.get(mid.partition(":")[0])
    if spec is None:
        task = fleet.router.aliases.get(mid)
        return {"qwen": {"virtual": True, "task": task or "auto"}}
    return {"max_model_len": spec.context_length,
            "qwen": {"variant": spec.variant, "capabilities": spec.capabilities.model_dump()}}
