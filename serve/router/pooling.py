"""Embeddings, pooling, classify, score and rerank: relayed only to deployments whose runner serves them.

vLLM's OpenAI server answers ``/v1/embeddings``, ``/pooling``, ``/classify``, ``/score`` (``/v1/score``) and
``/rerank`` (``/v1/rerank``, ``/v2/rerank``) when its model runs on the pooling runner. The router sends each
of these paths only to deployments whose ``runner`` serves it (:data:`serve.router.endpoints.
POOLING_RUNNERS_BY_PATH`); a chat model named for one of them, or an embedding model named for chat, is a 400
naming ``model``. ``model`` omitted, ``null`` or ``auto`` picks the fleet's first deployment that serves the
path (rerankers before embedding models for score and rerank), skipping those with no healthy replica or at
their hard limit.

Admission is the chat path's: the API key, the per-key request rate, the body size, and a token charge (the
inputs' bytes / 4, no completion) settled with the answer's ``usage``; the deadline, disconnect handling,
``x-qwen-*`` headers and OpenAI-shaped errors come from :meth:`RouterService.dispatch`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from serve.router.endpoints import POOLING_KIND, POOLING_PATHS, POOLING_RUNNERS_BY_PATH
from serve.router.policy import Decision
from serve.router.protocol import ErrorResponse, InvalidRequestError, OverloadedError, RouterError
from serve.router.service import _reject_reason

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from serve.router.service import RouterService

logger = logging.getLogger(__name__)

_INPUT_PATHS = frozenset({"/v1/embeddings", "/pooling", "/classify"})
_RERANK_PATHS = frozenset({"/rerank", "/v1/rerank", "/v2/rerank"})
#: vLLM's score request spells its two sides in four ways (newest first).
_SCORE_PAIRS: tuple[tuple[str, str], ...] = (("queries", "documents"), ("queries", "items"), ("data_1", "data_2"),
                                             ("text_1", "text_2"))
#: name -> (low, high) of the integer parameters of pooling requests.
_INTS: dict[str, tuple[int, int]] = {
    "dimensions": (1, 65536), "truncate_prompt_tokens": (-1, 10_000_000), "priority": (-(2**31), 2**31 - 1),
    "top_n": (0, 10_000_000), "max_tokens_per_query": (0, 10_000_000), "max_tokens_per_doc": (0, 10_000_000),
}
_BOOLS = ("use_activation", "normalize", "add_special_tokens", "return_documents", "add_generation_prompt")
_RUNNER_WORDS = {"embed": "an embedding model", "score": "a reranker or score model", "generate": "a chat model"}


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _token_ids(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value))


def _inputs(value: Any, limits: Any) -> None:
    """``input``: a string, strings, token ids, lists of token ids, or chat messages (vLLM)."""
    if isinstance(value, str):
        if not value:
            raise _bad("input", "`input` must not be an empty string.")
        return
    if not isinstance(value, list) or not value:
        raise _bad("input", "`input` must be a non-empty string, array of strings or array of token ids.")
    if len(value) > limits.max_pooling_inputs:
        raise _bad("input", f"Too many inputs: {len(value)} (the limit is {limits.max_pooling_inputs}).")
    if _token_ids(value):
        return
    if all(isinstance(x, str) and x for x in value) or all(_token_ids(x) for x in value):
        return
    if all(isinstance(x, dict) and isinstance(x.get("role"), str) for x in value):
        return  # vLLM's chat-style embedding input
    raise _bad("input", "`input` must be a non-empty string, an array of non-empty strings, an array of token "
                        "ids or an array of token-id arrays.")


def _messages(value: Any, limits: Any) -> None:
    if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in value):
        raise _bad("messages", "`messages` must be a non-empty array of message objects with a `role`.")
    if len(value) > limits.max_messages:
        raise _bad("messages", f"Too many messages: {len(value)} (the limit is {limits.max_messages}).")


def _side(body: Mapping[str, Any], name: str, limits: Any, *, single: bool = False) -> None:
    """One side of a score or rerank request: a text (or a multimodal object), or a list of them."""
    value = body.get(name)
    one = (isinstance(value, str) and value != "") or isinstance(value, dict)
    if single:
        if not one:
            raise _bad(name, f"`{name}` must be a non-empty string.")
        return
    if one:
        return
    if not isinstance(value, list) or not value or not all(
            (isinstance(x, str) and x != "") or isinstance(x, dict) for x in value):
        raise _bad(name, f"`{name}` must be a non-empty string or a non-empty array of non-empty strings.")
    if len(value) > limits.max_pooling_inputs:
        raise _bad(name, f"Too many {name}: {len(value)} (the limit is {limits.max_pooling_inputs}).")


def _number(body: Mapping[str, Any], name: str, lo: int, hi: int) -> None:
    v = body.get(name)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(name, f"`{name}` must be an integer.")
    if not lo <= v <= hi:
        raise _bad(name, f"`{name}` must be between {lo} and {hi}; got {v}.")


def validate_pooling_body(body: Mapping[str, Any], path: str, limits: Any) -> None:
    """Validate an embeddings, pooling, classify, score or rerank body (types, ranges, counts).

    Args:
        body: The parsed JSON object.
        path: The request path (one of :data:`serve.router.endpoints.POOLING_PATHS`).
        limits: The fleet's :class:`serve.config.InputLimits`.

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > 256):
        raise _bad("model", "`model` must be a string naming a model.")
    if body.get("stream") not in (None, False):
        raise _bad("stream", f"`stream` is not supported on {path}.")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise _bad("user", "`user` must be a string.")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _bad("encoding_format", "`encoding_format` must be `float` or `base64`.")
    for name, (lo, hi) in _INTS.items():
        _number(body, name, lo, hi)
    for name in _BOOLS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(name, f"`{name}` must be a boolean.")
    for name in ("chat_template_kwargs", "mm_processor_kwargs"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _bad(name, f"`{name}` must be an object.")
    if path in _INPUT_PATHS:
        if "input" not in body and "messages" in body:
            _messages(body["messages"], limits)
        else:
            _inputs(body.get("input"), limits)
    elif path in _RERANK_PATHS:
        _side(body, "query", limits, single=True)
        _side(body, "documents", limits)
    else:
        pair = next((p for p in _SCORE_PAIRS if p[0] in body or p[1] in body), _SCORE_PAIRS[0])
        _side(body, pair[0], limits)
        _side(body, pair[1], limits)


def estimate_pooling_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens a pooling request may cost: its texts' bytes / 4 plus its token ids (no completion)."""
    n = 0
    for name in ("input", "messages", "query", "queries", "documents", "items", "data_1", "data_2",
                 "text_1", "text_2"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, list) and value and all(isinstance(t, int) for t in value):
            n += len(value)
        else:
            n += len(orjson.dumps(value)) // 4
    return n + 1


class PoolingRouter:
    """Chooses the deployment of a pooling request and relays it through the service.

    Args:
        service: The router service (its policy, registry, guard, metrics and ``dispatch``).
    """

    def __init__(self, service: RouterService) -> None:
        self.service = service
        self.runners: dict[str, str] = {d.name: d.resolved_runner for d in service.fleet.deployments}

    def serving(self, path: str) -> list[str]:
        """Deployments able to serve ``path``, preferred first (by runner, then fleet order)."""
        return [name for runner in POOLING_RUNNERS_BY_PATH[path]
                for name, r in self.runners.items() if r == runner]

    def decide(self, body: Mapping[str, Any], path: str) -> Decision:
        """The deployment for a pooling request.

        Raises:
            InvalidRequestError: 400 naming ``model``: a deployment (or alias) that does not serve ``path``,
                or no deployment of the fleet serves it.
            ModelNotFoundError: 404, unknown model.
            OverloadedError: 503, no able deployment has a healthy replica with room.
        """
        kind = POOLING_KIND[path]
        model = body.get("model")
        deployment, _, task = self.service.chooser.resolve_model(model)  # unknown: 404
        able = self.serving(path)
        needs = " or ".join(_RUNNER_WORDS[r] for r in POOLING_RUNNERS_BY_PATH[path])
        if deployment is None:
            if task:  # an alias of a chat task
                raise InvalidRequestError(
                    f"`{model}` routes chat requests (task {task}); {path} needs {needs}"
                    + (f": one of {', '.join(able)}." if able else ", and this fleet has none."),
                    param="model", code="wrong_model_type")
            if not able:
                raise InvalidRequestError(f"No deployment of this fleet serves {path} (it needs {needs}).",
                                          param="model", code="no_capable_deployment")
            for name in able:
                if self._available(name):
                    return Decision(task=kind, model=name, candidates=able, reason=f"{kind}: auto -> {name}",
                                    explicit=True)
            raise OverloadedError(f"Every deployment that serves {path} is busy or down; retry later.",
                                  code="overloaded", retry_after=2.0)
        runner = self.runners[deployment]
        if deployment not in able:
            raise InvalidRequestError(
                f"Model `{model}` is {_RUNNER_WORDS[runner]} (runner {runner}); {path} needs {needs}"
                + (f": one of {', '.join(able)}." if able else ", and this fleet has none."),
                param="model", code="wrong_model_type")
        if not self._available(deployment):
            raise OverloadedError(f"Deployment `{deployment}` has no healthy replica with room right now; retry "
                                  "later.", code="deployment_unavailable", retry_after=5.0)
        return Decision(task=kind, model=deployment, candidates=[deployment], reason=f"{kind}: explicit model",
                        explicit=True)

    def _available(self, name: str) -> bool:
        load = self.service.registry.load(name)
        return bool(load.healthy_endpoints) and load.ongoing < self.service.chooser.capacity(name)[1]

    async def handle(self, request: Request, path: str) -> Response:
        """Serve one pooling request: the service's preamble (admit, parse, validate, decide), a token charge
        for the inputs, the relay."""
        svc = self.service
        rid: str = request.state.request_id
        t0 = time.perf_counter()
        decision: Decision | None = None
        try:
            p = await svc.prepare(request, path)
            decision = p.decision
            p.body["model"] = decision.model
            charge = None
            if svc.guard is not None and p.key is not None:
                n = estimate_pooling_tokens(p.body)
                charge = svc.guard.charge_tokens(p.key, n, n, rid)
            logger.info("request_id=%s kind=%s model=%s", rid, decision.task, decision.model)
            try:
                response = await svc.dispatch(request, p, t0, charge)
            except RouterError:
                if charge is not None:
                    charge.settle(0)  # no engine answered: give the tokens back
                raise
            if svc.guard is not None and p.key is not None:
                response.headers.update(svc.guard.rate_headers(p.key))
            return response
        except RouterError as exc:
            svc.metrics.reject(_reject_reason(exc))
            svc.metrics.observe_request(None, decision.model if decision else None, exc.status)
            logger.info("request_id=%s rejected status=%d code=%s", rid, exc.status, exc.code)
            raise


def register_pooling_routes(app: FastAPI, service: RouterService) -> PoolingRouter:
    """Add the pooling routes (:data:`serve.router.endpoints.POOLING_PATHS`) to the router app."""
    pooling = PoolingRouter(service)
    service.pooling = pooling
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse}
                                               for code in (400, 401, 404, 408, 413, 429, 502, 503)}
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}

    def route(path: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await pooling.handle(request, path)

        endpoint.__name__ = "pooling_" + path.strip("/").replace("/", "_")
        return endpoint

    for path in POOLING_PATHS:
        app.add_api_route(path, route(path), methods=["POST"], responses=errors, openapi_extra=body_doc)
    return pooling

