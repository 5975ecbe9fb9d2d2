"""The router replica's direct-ingress port: rebind over TIME_WAIT, and wait for the previous router to let go.

With direct ingress (``ray.direct_ingress``, the default) Ray Serve itself opens the router replica's listening
socket (``ray.serve._private.http_util.start_asgi_http_server``), from a port range that holds exactly the
router's ports. Two things then break a router replacement (a ``qwen-serve up`` whose router code changed, a
router replica that died):

* Serve binds that socket **without** ``SO_REUSEADDR``. Connections the old router closed first sit in
  TIME_WAIT on the port for 60 s, so the new replica's ``bind`` fails with ``EADDRINUSE``. Serve then marks the
  port *blocked* for good and, the range being full, no router can start again until ``qwen-serve down && up``
  (measured: a router code update after a burst of traffic failed three starts and left the stack without a
  router). :func:`allow_rebind` makes Serve's socket set ``SO_REUSEADDR`` in the router process. That option
  only lets a socket bind over connections in TIME_WAIT; a port another process *listens* on still fails.
* In a rolling update Serve starts the new router while the old one drains (up to its graceful shutdown
  timeout). A new replica that asks for a port before the old one released it fails; three such failures abort
  the update. :func:`wait_for_free_port` (called in the replica's constructor, before Serve asks for the port)
  waits until a port of the range has no listener, bounded by ``timeout_s``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_MARK = "_qwen_serve_rebinds"


def _reuse_addr(sock: socket.socket) -> bool:
    """Set ``SO_REUSEADDR`` only (not ``SO_REUSEPORT``: two live routers must never share a port)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return True


def allow_rebind() -> bool:
    """Make Ray Serve's direct-ingress socket in this process bind with ``SO_REUSEADDR``.

    Serve's ``start_asgi_http_server`` sets socket options only through its ``enable_so_reuseport`` flag,
    which replicas pass as False. In this process the flag is turned on and the function it calls sets
    ``SO_REUSEADDR`` alone. Only the router replica process calls this (the Serve proxy runs elsewhere).

    Returns:
        Whether it is installed (False when this Ray version's functions do not have the expected shape;
        the router then runs with Serve's own behaviour).
    """
    try:
        from ray.serve._private import http_util, replica
    except ImportError:  # pragma: no cover - Ray is a dependency of every replica
        return False
    original: Callable[..., Any] = getattr(replica, "start_asgi_http_server", None)  # type: ignore[assignment]
    if original is None or not hasattr(http_util, "set_socket_reuse_port"):
        logger.warning("Ray Serve's ingress server functions changed: the router port is bound without "
                       "SO_REUSEADDR")
        return False
    if getattr(original, _MARK, False):
        return True
    if "enable_so_reuseport" not in inspect.signature(original).parameters:
        logger.warning("Ray Serve's start_asgi_http_server has no enable_so_reuseport: SO_REUSEADDR not set")
        return False

    @functools.wraps(original)
    async def start(*args: Any, **kwargs: Any) -> Any:
        kwargs["enable_so_reuseport"] = True  # -> http_util.set_socket_reuse_port, replaced below
        return await original(*args, **kwargs)

    setattr(start, _MARK, True)
    http_util.set_socket_reuse_port = _reuse_addr
    replica.start_asgi_http_server = start
    return True


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ingress_port_range() -> tuple[int, int] | None:
    """Serve's direct-ingress HTTP port range ``[min, max)`` from this process's env, None without direct
    ingress."""
    if os.environ.get("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0") != "1":
        return None
    try:
        low = int(os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"])
        high = int(os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"])
    except (KeyError, ValueError):
        return None
    return (low, high) if high > low else None


def wait_for_free_port(host: str, ports: range, timeout_s: float, poll_s: float = 0.5) -> float:
    """Wait until some port of ``ports`` on ``host`` has no listener (the old router let go).

    Args:
        host: The address the routers listen on (a wildcard address is probed on loopback).
        ports: The router's port range.
        timeout_s: Longest wait; afterwards Serve's own allocation decides.
        poll_s: Probe interval.

    Returns:
        Seconds waited.
    """
    probe = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        if any(not _listening(probe, p) for p in ports):
            break
        time.sleep(poll_s)
    waited = time.monotonic() - t0
    if waited >= poll_s:
        logger.info("router ingress: waited %.1fs for the previous router to release its port", waited)
    return waited
