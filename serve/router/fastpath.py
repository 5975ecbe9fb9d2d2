"""A direct lane for the generate endpoints: the request skips FastAPI's routing and dependency solving.

Every request of ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/responses`` and ``/v1/messages``
goes straight to :meth:`serve.router.service.RouterService.handle`. Profiles of the router under load showed
route matching, the request/response wrapper and dependency solving taking about a sixth of the CPU of a
request that the handler itself does not need (its only parameter is the raw request).

It sits inside the request-id and body-size middlewares (which still apply) and answers a
:class:`~serve.errors.RouterError` exactly as the app's exception handler does; anything else propagates to
the app's outer error handler, as from a route. The routes stay registered, so the OpenAPI schema still
documents them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.errors import RouterError, error_response_for

if TYPE_CHECKING:  # pragma: no cover
    from serve.router.service import Kind, RouterService

#: Path -> request kind of the endpoints served by the direct lane (POST only).
DIRECT: dict[str, Kind] = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
                           "/v1/responses": "responses", "/v1/messages": "messages"}


class DirectLaneMiddleware:
    """Serve the generate endpoints without FastAPI's routing (pure ASGI).

    Args:
        app: The rest of the ASGI stack (everything else goes there).
        service: The router's request path.
    """

    def __init__(self, app: ASGIApp, service: RouterService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = DIRECT.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.service.handle(request, kind)
        except RouterError as exc:
            state = scope.get("state") or {}
            response = error_response_for(scope["path"], exc, str(state.get("request_id", "") or ""))
        await response(scope, receive, send)
