"""The router's direct-ingress port (serve/router/ingress_port.py), with Ray Serve's own server function."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from serve.router import ingress_port
from tests.router_kit import free_port


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _serve_and_leave_time_wait(port: int) -> None:
    """Start Serve's ingress server on ``port``, make a keep-alive request, stop the server: the server closes
    the connection first, so the port keeps a connection in TIME_WAIT."""
    from ray.serve._private import replica
    from ray.serve.config import HTTPOptions

    loop = asyncio.get_running_loop()
    task, server = await replica.start_asgi_http_server(_app, HTTPOptions(host="127.0.0.1", port=port),
                                                         event_loop=loop)
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    server.should_exit = True  # uvicorn closes the idle keep-alive connection: an active close on its side
    await asyncio.wait_for(task, 10)
    assert await reader.read() == b""  # the server's FIN
    writer.close()
    await writer.wait_closed()
    for _ in range(50):  # the server's side enters TIME_WAIT once our FIN is acknowledged
        if _time_wait_on(port):
            break
        await asyncio.sleep(0.02)


def _time_wait_on(port: int) -> bool:
    hexport = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1].endswith(hexport) and line.split()[3] == "06" for line in f.readlines()[1:])


@pytest.fixture
def restore_serve_functions() -> Any:
    from ray.serve._private import http_util, replica

    saved = replica.start_asgi_http_server, http_util.set_socket_reuse_port
    yield
    replica.start_asgi_http_server, http_util.set_socket_reuse_port = saved


async def test_without_it_serve_cannot_rebind_a_port_in_time_wait(restore_serve_functions: Any) -> None:
    """The failure this module exists for (so the next test shows a fix, not a machine without TIME_WAIT)."""
    port = free_port()
    await _serve_and_leave_time_wait(port)
    assert _time_wait_on(port)
    with pytest.raises(RuntimeError, match="Failed to bind"):
        await _serve_and_leave_time_wait(port)


async def test_allow_rebind_lets_a_new_router_bind_over_time_wait(restore_serve_functions: Any) -> None:
    assert ingress_port.allow_rebind() and ingress_port.allow_rebind()  # idempotent
    port = free_port()
    await _serve_and_leave_time_wait(port)
    assert _time_wait_on(port)
    await _serve_and_leave_time_wait(port)  # Serve's own function, same port, at once


def test_rebind_never_shares_a_live_listener(restore_serve_functions: Any) -> None:
    """SO_REUSEADDR only: a port another socket listens on still refuses the bind."""
    from ray.serve._private import http_util

    ingress_port.allow_rebind()
    with socket.socket() as live, socket.socket() as new:
        live.bind(("127.0.0.1", 0))
        live.listen()
        http_util.set_socket_reuse_port(new)
        assert new.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert not new.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        with pytest.raises(OSError):
            new.bind(live.getsockname())


def test_wait_for_free_port_waits_for_the_old_listener_to_go() -> None:
    with socket.socket() as old:
        old.bind(("127.0.0.1", 0))
        old.listen()
        port = old.getsockname()[1]
        assert ingress_port.wait_for_free_port("127.0.0.1", range(port, port + 1), timeout_s=0.6,
                                               poll_s=0.2) >= 0.6  # still held: waited it out
    assert ingress_port.wait_for_free_port("0.0.0.0", range(port, port + 1), timeout_s=5, poll_s=0.2) < 0.2


def test_port_range_from_serve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", "1")
    monkeypatch.setenv("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "8000")
    monkeypatch.setenv("RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT", "8002")
    assert ingress_port.ingress_port_range() == (8000, 8002)
    monkeypatch.setenv("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")
    assert ingress_port.ingress_port_range() is None
