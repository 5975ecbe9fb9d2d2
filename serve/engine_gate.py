"""What stands in front of an engine replica's vLLM app: the engine secret check and the in-flight count.

:class:`EngineGate` is a pure ASGI middleware around vLLM's OpenAI app in each engine replica:

- every HTTP request must carry the fleet's engine secret (``serve.security.engine_secret``); without it, or
  with a wrong one, the answer is an OpenAI-shaped 401 and vLLM never sees the request;
- it counts the requests in flight (:class:`InflightCounter`): from the request's arrival until its response
  is fully sent, streams included. That is exactly what every router replica has sent this replica and not
  yet seen answered, with no router-to-engine channel; the replica reports it to Ray Serve's autoscaler and
  waits for it to reach zero before it is removed.

Imports nothing from vLLM or Ray, so it is unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from serve.security.engine_secret import HEADER, matches

_HEADER = HEADER.encode()
_UNAUTHORIZED = json.dumps({"error": {
    "message": "This engine endpoint answers only the qwen-serve router; send requests to the router.",
    "type": "authentication_error", "param": None, "code": "engine_secret_required"}}).encode()


class InflightCounter:
    """Requests in flight on the replica's HTTP app, and when the count last changed."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.last_change = time.monotonic()

    def enter(self) -> None:
        """A request arrived."""
        self.count += 1
        self.total += 1
        self.last_change = time.monotonic()

    def exit(self) -> None:
        """A request's response was sent (or the client went away)."""
        self.count -= 1
        self.last_change = time.monotonic()

    async def wait_idle(self, quiet_s: float, timeout_s: float, poll_s: float = 0.2) -> bool:
        """Wait until nothing is in flight and nothing arrived for ``quiet_s`` seconds.

        Returns:
            True when idle; False when ``timeout_s`` passed first.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count <= 0 and time.monotonic() - self.last_change >= quiet_s:
                return True
            await asyncio.sleep(poll_s)
        return self.count <= 0


class EngineGate:
    """ASGI middleware: refuse requests without the engine secret (401), count the others in flight.

    Args:
        app: vLLM's OpenAI app.
        secret: The fleet's engine secret; None refuses every request (no secret could be loaded).
        counter: Where in-flight requests are counted.
        require_secret: False lets requests through unchecked (``security.engine_auth: false``).
    """

    def __init__(self, app: ASGIApp, secret: str | None, counter: InflightCounter,
                 require_secret: bool = True) -> None:
        self.app = app
        self.secret = secret or ""
        self.counter = counter
        self.require_secret = require_secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.require_secret and not self._authorized(scope):
            await _refuse(send)
            return
        self.counter.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.exit()

    def _authorized(self, scope: Scope) -> bool:
        for key, value in scope.get("headers", ()):
            if key == _HEADER:
                return matches(value, self.secret)
        return False


async def _refuse(send: Any) -> None:
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(_UNAUTHORIZED)).encode())]})
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})


class SharedInflightCounter(InflightCounter):
    """An :class:`InflightCounter` that also mirrors its count into a shared-memory value, so that the engine
    replica can read what its frontend processes (``serve.frontends``) have in flight."""

    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.shared = shared

    def enter(self) -> None:
        """A request arrived."""
        super().enter()
        self.shared.value = self.count

    def exit(self) -> None:
        """A request's response was sent (or the client went away)."""
        super().exit()
        self.shared.value = self.count


#: The gate settings of a frontend process, set by ``serve.frontends`` before vLLM builds its app:
#: ``(secret, counter, require_secret)``.
FRONTEND_GATE: tuple[str | None, InflightCounter, bool] | None = None


class FrontendGate(EngineGate):
    """The engine gate for a frontend process, added by vLLM's own ``--middleware`` option (which constructs
    middleware with the app alone, hence the module-level settings in :data:`FRONTEND_GATE`)."""

    def __init__(self, app: ASGIApp) -> None:
        if FRONTEND_GATE is None:
            raise RuntimeError("FrontendGate used outside an engine frontend process")
        secret, counter, require = FRONTEND_GATE
        super().__init__(app, secret, counter, require_secret=require)
