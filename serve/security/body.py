"""Request body size limit, enforced before the body is read: ``Content-Length`` first, then actual bytes.

A pure ASGI middleware (streaming and disconnects pass through untouched). A declared length over the limit
is answered 413 at once without reading anything; a chunked or lying body is cut off as soon as the bytes
received pass the limit (the handler's ``request.body()`` raises :class:`BodyTooLargeError`, a RouterError,
so the usual error path answers 413).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import InvalidRequestError, RouterError, error_response_for

logger = logging.getLogger(__name__)


class BodyTooLargeError(RouterError):
    """The request body is over ``limits.max_body_bytes`` (413)."""

    status = 413
    err_type = "invalid_request_error"


def too_large(limit: int) -> BodyTooLargeError:
    """The 413 error for a body over ``limit`` bytes."""
    return BodyTooLargeError(f"The request body is too large; the limit is {limit} bytes.",
                             code="request_too_large")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with an OpenAI-shaped 413.

    Args:
        app: The wrapped ASGI app.
        max_bytes: Largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(scope.get("state", {}).get("request_id", "")) or None
        declared = _content_length(scope)
        if declared == -1:
            err: RouterError = InvalidRequestError("The Content-Length header is not a valid length.",
                                                   code="invalid_content_length")
            await error_response_for(scope.get("path", ""), err, rid)(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            logger.info("request_id=%s rejected status=413 declared_bytes=%d", rid, declared)
            await error_response_for(scope.get("path", ""), too_large(self.max_bytes), rid)(scope, receive, send)
            return
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    logger.info("request_id=%s rejected status=413 received_bytes>%d", rid, limit)
                    raise too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent, -1 when malformed."""
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                n = int(v)
            except ValueError:
                return -1
            return n if n >= 0 else -1
    return None
