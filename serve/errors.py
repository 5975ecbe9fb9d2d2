"""The one error vocabulary of the stack: typed errors and the factory that turns any exception into an
OpenAI-shaped answer.

The shape is OpenAI's (and vLLM's ``ErrorResponse``): ``{"error": {"message", "type", "param", "code"}}``.
Every error the router, the admission guard or the engine front door answers goes through
:func:`error_response` (JSON) or :func:`sse_error` (inside an event stream). 5xx answers never carry
``str(exc)``: only a fixed message and the request id.

This module is neutral ground: ``serve.router`` and ``serve.security`` both raise these errors and neither
imports the other for them.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class RouterError(Exception):
    """Base of every error the router answers itself.

    Attributes:
        status: HTTP status.
        err_type: OpenAI error ``type``.
        param: The offending request parameter, when there is one.
        code: A short machine-readable code.
        retry_after: Seconds for the ``Retry-After`` header (429/503).
        headers: More response headers (e.g. a key's ``x-ratelimit-*`` figures on a 429).
    """

    status: int = 400
    err_type: str = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}
        if status is not None:
            self.status = status


class InvalidRequestError(RouterError):
    """A client mistake (400), naming the parameter."""


class AuthenticationError(RouterError):
    """Missing or wrong API key (401)."""

    status = 401
    err_type = "authentication_error"


class ModelNotFoundError(RouterError):
    """The requested model is neither a deployment, an adapter nor a virtual model (404)."""

    status = 404
    err_type = "not_found_error"


class RateLimitError(RouterError):
    """Per-key request or token rate exceeded, or the router's queue is full (429)."""

    status = 429
    err_type = "rate_limit_error"


class OverloadedError(RouterError):
    """No candidate deployment can take the request now (503)."""

    status = 503
    err_type = "service_unavailable_error"


class UpstreamTimeoutError(RouterError):
    """The request's deadline passed (408)."""

    status = 408
    err_type = "timeout_error"


class UpstreamError(RouterError):
    """The engine failed (502); the message is fixed, the cause only goes to the log."""

    status = 502
    err_type = "upstream_error"


_INTERNAL = "Internal server error"


def error_body(exc: BaseException, request_id: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Map any exception to ``(status, OpenAI error body, extra headers)``.

    Args:
        exc: The exception.
        request_id: Added to 5xx messages so operators can find the log line.

    Returns:
        The HTTP status, the body as a dict and extra headers (``Retry-After``, the error's own).
    """
    headers: dict[str, str] = {}
    if isinstance(exc, RouterError):
        status, err_type, message, param, code = exc.status, exc.err_type, exc.message, exc.param, exc.code
        headers.update(exc.headers)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(round(exc.retry_after))))
    else:
        status, err_type, param, code = 500, "internal_server_error", None, None
        message = _INTERNAL
    if status >= 500 and not isinstance(exc, RouterError):
        # Never leak str(exc) on a 5xx: the message is fixed, the cause only goes to the log.
        message = f"{_INTERNAL} (request id {request_id})" if request_id else _INTERNAL
    body = {"error": {"message": message, "type": err_type, "param": param, "code": code or status}}
    return status, body, headers


def error_response(exc: BaseException, request_id: str | None = None) -> Response:
    """Build the JSON error response for ``exc`` (see :func:`error_body`)."""
    status, body, headers = error_body(exc, request_id)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def sse_error(exc: BaseException, request_id: str | None = None) -> bytes:
    """The streaming twin of :func:`error_response`: one ``data:`` event carrying the error body."""
    _, body, _ = error_body(exc, request_id)
    return b"data: " + orjson.dumps(body) + b"\n\n"


#: ``type`` of an engine's 4xx whose body names none: the router's own error of that status.
_TYPE_BY_STATUS = {cls.status: cls.err_type for cls in (AuthenticationError, ModelNotFoundError, RateLimitError,
                                                         UpstreamTimeoutError)}
#: Seconds in ``Retry-After`` when an engine that refused for load said nothing usable.
ENGINE_RETRY_AFTER = 5.0


def engine_error(status: int, data: bytes, retry_after: str | None = None) -> RouterError:
    """The router's error for an engine's error answer, to be answered in the shape of the router's path.

    The engine's body may be OpenAI-shaped (vLLM, the FAKE engine), Anthropic-shaped, FastAPI's ``detail``, or
    not JSON at all (a proxy's page); relaying it as it is would give Anthropic clients an OpenAI error and
    any client a body it cannot parse. So:

    - a 4xx keeps its status and the engine's ``message``, ``type``, ``param`` and ``code`` (a client mistake,
      explained in the engine's words; a fixed message when the body has none); a 429 keeps ``Retry-After``;
    - 401 or 403 is the engine refusing the *router's* credentials (the engine secret): a 502, since the
      client's own key was accepted;
    - 503 is an overloaded or starting engine: a 503 with ``Retry-After`` (the engine's, else
      :data:`ENGINE_RETRY_AFTER`);
    - any other 5xx is an :class:`UpstreamError` (502) with a fixed message: the engine's text is never shown.

    Args:
        status: The engine's HTTP status (400 or more).
        data: The engine's body.
        retry_after: The engine's ``Retry-After`` header, if any.

    Returns:
        The error (its ``status`` is the one to answer with).
    """
    wait = _seconds(retry_after)
    if status == 503:
        return OverloadedError("The model engine is overloaded or starting; retry later.", code="engine_error",
                               retry_after=wait or ENGINE_RETRY_AFTER)
    if status >= 500 or status in (401, 403):
        return UpstreamError("The model engine failed to process the request.", code="engine_error")
    info = _error_info(data)
    message = info.get("message")
    err = RouterError(message if isinstance(message, str) and message else
                      f"The model engine refused the request (HTTP {status}).",
                      param=info["param"] if isinstance(info.get("param"), str) else None,
                      code=info["code"] if isinstance(info.get("code"), str) else None, status=status,
                      retry_after=wait if status == 429 else None)
    etype = info.get("type")
    err.err_type = etype if isinstance(etype, str) and etype else _TYPE_BY_STATUS.get(status, "invalid_request_error")
    return err


def _error_info(data: bytes) -> dict[str, Any]:
    """The ``error`` object of an engine's error body (OpenAI's, Anthropic's, vLLM's flat one or FastAPI's)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(doc, dict):
        return {}
    if isinstance(doc.get("error"), dict):
        return dict(doc["error"])
    if isinstance(doc.get("message"), str):  # older vLLM: {"object": "error", "message", "type", ...}
        return doc
    detail = doc.get("detail")
    if isinstance(detail, str):
        return {"message": detail}
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI's validation error
        loc = detail[0].get("loc")
        param = ".".join(str(x) for x in loc[1:]) if isinstance(loc, list) and len(loc) > 1 else None
        return {"message": "Invalid request parameters.", "param": param}
    return {}


def _seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header's seconds (positive, finite, at most an hour), else None."""
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value is not None and 0 < value <= 3600 else None


#: Anthropic's error ``type`` for each status (https://docs.anthropic.com/en/api/errors).
#: Any other 4xx is ``invalid_request_error`` (a client mistake), any other 5xx ``api_error``.
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def anthropic_error_body(exc: BaseException, request_id: str | None = None
                         ) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The same error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``.

    Used on the Anthropic Messages paths (``/v1/messages``), where clients parse that shape.
    """
    status, body, headers = error_body(exc, request_id)
    err = body["error"]
    message = err["message"] if not err.get("param") else f"{err['param']}: {err['message']}"
    etype = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return status, {"type": "error", "error": {"type": etype, "message": message}}, headers


def is_anthropic_path(path: str) -> bool:
    """Whether errors on ``path`` are answered in Anthropic's shape."""
    return path.startswith("/v1/messages")


def error_response_for(path: str, exc: BaseException, request_id: str | None = None) -> Response:
    """:func:`error_response` in the shape the path's clients expect (Anthropic's on ``/v1/messages``)."""
    if not is_anthropic_path(path):
        return error_response(exc, request_id)
    status, body, headers = anthropic_error_body(exc, request_id)
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def anthropic_sse_error(exc: BaseException, request_id: str | None = None) -> bytes:
    """The streaming twin for Anthropic clients: an ``error`` event."""
    _, body, _ = anthropic_error_body(exc, request_id)
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def responses_sse_error(exc: BaseException, request_id: str | None = None) -> bytes:
    """The streaming twin for the Responses API: its ``error`` event (``type``, ``code``, ``message``, ``param``,
    ``sequence_number``), also carrying the ``error`` object that OpenAI's SDKs raise on."""
    _, body, _ = error_body(exc, request_id)
    err = body["error"]
    # sequence_number 0: the router relays the engine's events as bytes and does not count them.
    event = {"type": "error", "code": err["code"], "message": err["message"], "param": err["param"],
             "sequence_number": 0, "error": err}
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_error_for(path: str, exc: BaseException, request_id: str | None = None) -> bytes:
    """The error that ends a stream on ``path``, in the shape its clients parse, with the path's terminator.

    Chat and completions: a ``data:`` event with OpenAI's error body, then ``data: [DONE]``. Responses: its
    ``error`` event, then ``[DONE]`` (which OpenAI's SDKs stop at). Anthropic's Messages: an ``error`` event.
    """
    if is_anthropic_path(path):
        return anthropic_sse_error(exc, request_id)
    if path.startswith("/v1/responses"):
        return responses_sse_error(exc, request_id) + b"data: [DONE]\n\n"
    return sse_error(exc, request_id) + b"data: [DONE]\n\n"
