"""A router app that takes a new fleet config while it serves: ``qwen-serve up`` on a running stack.

The router replica listens on the public port itself (Serve direct ingress). Restarting it for a config
change would close that port for the seconds a new replica needs, failing every request in between. So the
router deployment keeps its version across fleet changes and receives the fleet as Ray Serve ``user_config``;
Serve calls ``reconfigure`` on the live replica, and :class:`SwappableApp` builds a router app for the new
fleet, starts it, sends new requests to it, and shuts the old app down once the requests it was serving are
done. The endpoint registry (and so the per-replica load counts) is shared by both apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long an old app may keep serving its in-flight requests (long streams) before it is shut down.
DRAIN_TIMEOUT_S = 600.0


class Lifespan:
    """Run one ASGI app's lifespan protocol (startup, then shutdown) outside a server."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._events: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Future[None] | None = None

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self._events.put(str(message["type"]))

    async def _wait(self, expected: str) -> None:
        assert self._task is not None
        getter: asyncio.Future[Any] = asyncio.ensure_future(self._events.get())
        task: asyncio.Future[Any] = self._task
        done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            self._task.result()  # raises the app's error
            raise RuntimeError(f"ASGI lifespan ended before {expected}")
        event = getter.result()
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.warning("router app lifespan failed: %s", type(task.exception()).__name__)
        if event != expected:
            raise RuntimeError(f"ASGI lifespan: {event}")

    async def startup(self) -> None:
        """Start the app (its lifespan startup has completed when this returns).

        Raises:
            RuntimeError: The app's startup failed.
        """
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.ensure_future(self._app(scope, self._inbox.get, self._send))
        await self._inbox.put({"type": "lifespan.startup"})
        await self._wait("lifespan.startup.complete")

    async def shutdown(self) -> None:
        """Stop the app (its lifespan shutdown has run when this returns)."""
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(Exception):
            await self._wait("lifespan.shutdown.complete")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=10)


class SwappableApp:
    """ASGI app forwarding to the current router app; :meth:`swap` replaces it without dropping requests.

    Args:
        app: The first router app (its lifespan runs when the server starts this app's lifespan).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.current = app
        self._lifespans: dict[int, Lifespan] = {}
        self._inflight: dict[int, int] = {}
        self._swap_lock = asyncio.Lock()
        self.swaps = 0

    @property
    def routes(self) -> Any:
        """The current app's routes (Ray Serve reads them for its per-route metrics)."""
        return getattr(self.current, "routes", [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        app = self.current
        key = id(app)
        self._inflight[key] = self._inflight.get(key, 0) + 1
        try:
            await app(scope, receive, send)
        finally:
            self._inflight[key] -= 1

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        """The server's lifespan: start the current app; at shutdown stop every app still running."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start(self.current)
                except Exception as exc:  # noqa: BLE001 - reported to the server, which fails the replica
                    logger.exception("router app startup failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for lifespan in list(self._lifespans.values()):
                    await lifespan.shutdown()
                self._lifespans.clear()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self, app: ASGIApp) -> None:
        lifespan = Lifespan(app)
        await lifespan.startup()
        self._lifespans[id(app)] = lifespan

    async def swap(self, app: ASGIApp, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Start ``app``, route new requests to it, then stop the old app once its requests are done.

        Args:
            app: The new router app.
            drain_timeout_s: Longest wait for the old app's in-flight requests before it is shut down.

        Raises:
            RuntimeError: The new app failed to start; the old one keeps serving.
        """
        async with self._swap_lock:
            await self._start(app)
            old, self.current = self.current, app
            self.swaps += 1
            logger.info("router app replaced in place (swap %d)", self.swaps)
            asyncio.get_running_loop().create_task(self._retire(old, drain_timeout_s))

    async def _retire(self, app: ASGIApp, drain_timeout_s: float) -> None:
        key = id(app)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout_s
        while self._inflight.get(key, 0) > 0 and loop.time() < deadline:
            await asyncio.sleep(0.2)
        lifespan = self._lifespans.pop(key, None)
        if lifespan is not None:
            await lifespan.shutdown()
        self._inflight.pop(key, None)


class RouterHost:
    """The router replica's app and fleet: builds the app, and swaps it when Serve passes a new fleet.

    Args:
        fleet: The validated fleet the replica was created with.
        build: Builds a router app for a fleet (sharing the replica's endpoint registry).
    """

    def __init__(self, fleet: Any, build: Callable[[Any], ASGIApp]) -> None:
        self.fleet = fleet
        self._build = build
        self.app = SwappableApp(build(fleet))

    async def reconfigure(self, user_config: Any) -> bool:
        """Apply ``{"fleet": <fleet dict>}`` from Ray Serve's ``user_config``; True when the app was swapped.

        The first call (Serve passes the same fleet right after the replica starts) changes nothing.
        """
        from serve.config import FleetConfig

        data = (user_config or {}).get("fleet") if isinstance(user_config, dict) else None
        if not data or data == self.fleet.model_dump(mode="json"):
            return False
        fleet = FleetConfig.from_dict(data, source="user_config", check_paths=False)
        await self.app.swap(self._build(fleet))
        self.fleet = fleet
        logger.info("router now serves fleet %s: %s", fleet.name, ", ".join(d.name for d in fleet.deployments))
        return True
