"""One way to stand up the router in a test: :func:`make_router` over engines at given URLs, and
:func:`free_port`. Unit tests point it at FAKE engines; e2e tests at the real engines' private URLs."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def make_router(fleet: Any, urls: Mapping[str, str | list[str]], *, client: tuple[str, int] | None = None,
                      headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                      **app_kwargs: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The router app over a :class:`~serve.router.upstream.StaticRegistry` of ``urls``, started, with an
    httpx client bound to it in process.

    Args:
        fleet: A ``FleetConfig`` or a fleet dict.
        urls: Engine URL(s) per deployment (replicas are named r0, r1, ... in list order).
        client: The client address the app sees (default: httpx's 127.0.0.1).
        headers: Headers sent with every request.
        timeout: Client timeout (seconds).
        **app_kwargs: Passed to :func:`serve.router.app.create_app` (``classifier``, ``guard``, ...).

    Yields:
        ``(client, app)``; ``app.state.service`` is the router's service.
    """
    from serve.config import FleetConfig
    from serve.router.app import create_app
    from serve.router.upstream import StaticRegistry

    if not isinstance(fleet, FleetConfig):
        fleet = FleetConfig.from_dict(fleet)
    registry = StaticRegistry({name: [u] if isinstance(u, str) else list(u) for name, u in urls.items()})
    app = create_app(fleet, registry, **app_kwargs)
    transport = httpx.ASGITransport(app=app, client=client) if client else httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://router", headers=dict(headers or {}), timeout=timeout) as c:
        yield c, app
