"""Engine frontends: vLLM's OpenAI server in processes of their own, beside the engine replica.

At high concurrency the process that runs vLLM's OpenAI app (tokenising prompts, rendering chat templates,
detokenising, encoding every SSE chunk) is CPU-bound on one core. Raw ``vllm serve`` scales it with
``--api-server-count N``: N API-server processes, each an engine *client* (an ``AsyncLLM`` with its own ZMQ
input/output sockets and client index), all talking to the one engine core. This module does the same for an
engine replica (:class:`serve.engine_server.QwenLLMServer`), with vLLM's own pieces:

1. :func:`engine_launch_hook` wraps vLLM's ``get_engine_zmq_addresses`` while the replica's ``AsyncLLM`` is
   built, so the engine core it launches gets ``1 + N`` client address pairs: index 0 is the replica's own
   client (Ray Serve's handle path, health checks, stats), indices 1..N are for the frontends. The same hook
   gives the engine its own torch.distributed port window (:mod:`serve.node_ports`): vLLM 0.26's Ray executor
   otherwise starts every engine's TCPStore port search at the same port (100), so replicas starting together
   on one node race for it and all but one fail.
2. :class:`EngineFrontends` spawns N processes. Each builds an ``AsyncLLM`` over the replica's finished
   ``VllmConfig`` with ``client_addresses`` / ``client_count`` / ``client_index`` (what vLLM's API-server
   workers do) and serves vLLM's OpenAI app with vLLM's ``build_and_serve`` on a socket the replica bound, so
   each frontend has its own URL on the replica's node. The router spreads streams over these URLs (the
   endpoint record's ``urls``).
3. Each frontend counts the scheduler statistics it receives (vLLM hands each step's stats to one client
   only) into a small shared-memory array; :meth:`EngineFrontends.stats` reads them and
   :func:`merge_stats` folds them with the replica's own into the record's ``stats``.

Lifecycle: frontends are children of the replica; they exit with it (``PR_SET_PDEATHSIG``) and are stopped in
its ``__del__``. A frontend that dies makes the replica's ``check_health`` fail, so Ray Serve replaces the
replica with its engine (an engine client cannot re-attach to a running engine core).

Limits: one node per engine (IPC addresses), data-parallel size 1. Multimodal deployments get the processor
cache disabled (``mm_processor_cache_gb: 0``, set in :mod:`serve.deployments`), since vLLM mirrors that cache
per client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from serve.engine_stats import EngineStats

logger = logging.getLogger(__name__)

#: Process title prefix of a frontend (``qwen-frontend:<deployment>:<index>``); the orphan reaper knows it.
TITLE_PREFIX = "qwen-frontend"
#: Order of the :class:`EngineStats` fields in a frontend's shared array.
STATS_FIELDS = ("prefix_queries", "prefix_hits", "prefix_requests", "running", "waiting", "kv_usage", "updated")
#: How often a frontend copies its engine statistics into the shared array (seconds).
STATS_COPY_S = 0.5


# ------------------------------------------------------------------------------------------- launch hook
@dataclass
class LaunchInfo:
    """What :func:`engine_launch_hook` saw when the replica's engine was launched.

    Attributes:
        inputs: The engine's client input addresses (index 0 is the replica's own client).
        outputs: The engine's client output addresses, same order.
        port_window: First port of the engine's torch.distributed port window (None: not set).
    """

    inputs: list[str]
    outputs: list[str]
    port_window: int | None = None


@contextlib.contextmanager
def engine_launch_hook(extra_clients: int, port_window: int | None) -> Iterator[list[LaunchInfo]]:
    """While active, the vLLM engine this process launches takes ``extra_clients`` more clients (and a port window).

    vLLM's ``MPClient`` asks ``get_engine_zmq_addresses(vllm_config)`` for the ZMQ addresses of the engine it is
    about to launch; the wrapper asks for ``1 + extra_clients`` address pairs (as ``vllm serve
    --api-server-count`` does) and, when ``port_window`` is given, sets the engine config's
    ``data_parallel_master_port`` so vLLM 0.26's Ray executor searches its TCPStore port from
    ``port_window`` on (it starts at ``data_parallel_master_port + 100``; the default master port 0 puts every
    engine of a node on port 100). vLLM 0.29 binds that store on port 0 and ignores the window.

    Args:
        extra_clients: Frontend processes that will attach (0: only the port window is set).
        port_window: First port of this engine's torch.distributed port window, or None.

    Yields:
        A list that holds one :class:`LaunchInfo` once the engine was launched.
    """
    from vllm.v1.engine import core_client

    original = core_client.get_engine_zmq_addresses
    seen: list[LaunchInfo] = []

    def hooked(vllm_config: Any, num_api_servers: int = 1, **kwargs: Any) -> Any:
        count = num_api_servers + max(0, extra_clients)
        if port_window is not None:
            vllm_config.parallel_config.data_parallel_master_port = port_window - 100
        addresses = original(vllm_config, count, **kwargs)
        seen.append(LaunchInfo(inputs=addresses.inputs, outputs=addresses.outputs, port_window=port_window))
        return addresses

    core_client.get_engine_zmq_addresses = hooked
    try:
        yield seen
    finally:
        core_client.get_engine_zmq_addresses = original


# ------------------------------------------------------------------------------------------- statistics
def stats_from_array(values: Sequence[float]) -> EngineStats | None:
    """An :class:`EngineStats` from a frontend's shared array (None before its first engine step)."""
    data = dict(zip(STATS_FIELDS, values, strict=True))
    if not data["updated"]:
        return None
    return EngineStats(
        prefix_queries=int(data["prefix_queries"]), prefix_hits=int(data["prefix_hits"]),
        prefix_requests=int(data["prefix_requests"]), running=int(data["running"]), waiting=int(data["waiting"]),
        kv_usage=float(data["kv_usage"]), updated=float(data["updated"]),
    )


def stats_to_array(stats: EngineStats, out: Any) -> None:
    """Copy ``stats`` into a frontend's shared array (same order as :data:`STATS_FIELDS`)."""
    for i, name in enumerate(STATS_FIELDS):
        out[i] = float(getattr(stats, name))


def merge_stats(parts: Sequence[EngineStats | None]) -> EngineStats | None:
    """One engine's statistics from what each of its clients received.

    vLLM sends each scheduler step's statistics to one client only, so the cumulative prefix-cache counters
    are the sums over the clients, and the gauges (running, waiting, KV usage) are those of the most recent
    step any client saw.
    """
    present = [p for p in parts if p is not None]
    if not present:
        return None
    latest = max(present, key=lambda p: p.updated)
    return EngineStats(
        prefix_queries=sum(p.prefix_queries for p in present), prefix_hits=sum(p.prefix_hits for p in present),
        prefix_requests=sum(p.prefix_requests for p in present), running=latest.running, waiting=latest.waiting,
        kv_usage=latest.kv_usage, updated=latest.updated,
    )


# ------------------------------------------------------------------------------------------- the parent side
@dataclass
class FrontendSpec:
    """What one frontend process needs besides the engine config and args.

    Attributes:
        deployment: Deployment name (process title and logs).
        index: The engine client index (1..N; 0 is the replica's own client).
        count: Engine clients in all (1 + N).
        input_address: The client's ZMQ input address (it binds it).
        output_address: The client's ZMQ output address (it binds it).
        url: Base URL the frontend serves on.
    """

    deployment: str
    index: int
    count: int
    input_address: str
    output_address: str
    url: str


class EngineFrontends:
    """N vLLM OpenAI-server processes attached to one replica's engine (see the module docstring).

    Args:
        deployment: Deployment name.
        count: Frontend processes.
    """

    def __init__(self, deployment: str, count: int) -> None:
        self.deployment = deployment
        self.count = count
        self.urls: list[str] = []
        self._procs: list[Any] = []
        self._stats: list[Any] = []
        self._inflight: list[Any] = []
        self._secret: str | None = None

    def start(self, *, vllm_config: Any, args: argparse.Namespace, launch: LaunchInfo, host: str,
              secret: str | None = None, require_secret: bool = False) -> None:
        """Spawn the frontend processes (returns at once; :meth:`wait_ready` waits for them).

        Args:
            vllm_config: The replica's engine config (after the engine started).
            args: The vLLM frontend + engine args namespace the replica's own app was built with.
            launch: The engine's client addresses (:func:`engine_launch_hook`).
            host: Address to serve on (the replica's node).
            secret: The fleet's engine secret: each frontend refuses requests without it, as the replica's own
                app does (``serve.engine_gate``).
            require_secret: Whether the secret is required (``security.engine_auth``).

        Raises:
            RuntimeError: The engine was not launched with client slots for this many frontends.
        """
        need = self.count + 1
        if len(launch.inputs) < need or len(launch.outputs) < need:
            raise RuntimeError(f"engine has {len(launch.inputs)} client slots; {need} needed")
        addresses = [*launch.inputs[1:need], *launch.outputs[1:need]]
        if not all(a.startswith("ipc://") for a in addresses):
            raise RuntimeError("engine frontends need the engine on the replica's node (IPC client addresses)")
        ctx = multiprocessing.get_context("spawn")
        fargs = frontend_args(args)
        # Behind the same gate as the replica's own app (secret, in-flight count), through vLLM's --middleware.
        fargs.middleware = [*(getattr(fargs, "middleware", None) or []), "serve.engine_gate.FrontendGate"]
        self._secret = secret
        for i in range(1, need):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            url = f"http://{host}:{sock.getsockname()[1]}"
            spec = FrontendSpec(self.deployment, i, need, launch.inputs[i], launch.outputs[i], url)
            stats = ctx.RawArray("d", len(STATS_FIELDS))
            inflight = ctx.RawValue("i", 0)
            proc = ctx.Process(target=run_frontend, name=f"{TITLE_PREFIX}-{i}", daemon=True,
                               args=(spec, vllm_config, fargs, sock, stats, (secret, require_secret, inflight)))
            proc.start()
            sock.close()  # the child got its own copy at start
            self._procs.append(proc)
            self._stats.append(stats)
            self._inflight.append(inflight)
            self.urls.append(url)
        logger.info("engine %s: started %d frontend process(es) on %s", self.deployment, self.count,
                    ", ".join(self.urls))

    async def wait_ready(self, timeout_s: float = 600.0) -> None:
        """Wait until every frontend answers vLLM's ``/health`` with 200.

        Raises:
            RuntimeError: A frontend exited or did not come up in ``timeout_s``.
        """
        pending = set(range(len(self._procs)))
        deadline = time.monotonic() + timeout_s
        loop = asyncio.get_running_loop()
        while pending:
            for i in sorted(pending):
                if not self._procs[i].is_alive():
                    raise RuntimeError(f"engine frontend {i + 1} of {self.deployment} exited with code "
                                       f"{self._procs[i].exitcode} while starting")
                if await loop.run_in_executor(None, _healthy, self.urls[i], self._secret):
                    pending.discard(i)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"engine frontends {sorted(i + 1 for i in pending)} of {self.deployment} "
                                   f"not ready after {timeout_s:.0f}s")
            await asyncio.sleep(0.25)

    def check(self) -> None:
        """Raise when a frontend process is gone (the replica's health check; Ray Serve then replaces it).

        Raises:
            RuntimeError: Naming the frontend that exited.
        """
        for i, proc in enumerate(self._procs):
            if not proc.is_alive():
                raise RuntimeError(f"engine frontend {i + 1} of {self.deployment} ({self.urls[i]}) exited "
                                   f"with code {proc.exitcode}")

    def stats(self) -> list[EngineStats | None]:
        """Each frontend's share of the engine statistics (None for one without any yet)."""
        return [stats_from_array(list(arr)) for arr in self._stats]

    def inflight(self) -> int:
        """Requests in flight on the frontends (what the routers sent them and have not seen answered)."""
        return sum(max(0, int(v.value)) for v in self._inflight)

    def pids(self) -> list[int]:
        """Process ids of the frontends (status, profiling)."""
        return [int(p.pid) for p in self._procs if p.pid is not None]

    def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop the frontends: SIGTERM (vLLM's server drains), then SIGKILL after ``grace_s``."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + grace_s
        for proc in self._procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1.0)


def _healthy(url: str, secret: str | None = None) -> bool:
    import urllib.error
    import urllib.request

    from serve.security.engine_secret import HEADER

    request = urllib.request.Request(url + "/health", headers={HEADER: secret} if secret else {})
    try:
        with urllib.request.urlopen(request, timeout=2.0) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def frontend_args(args: argparse.Namespace) -> argparse.Namespace:
    """The replica's vLLM args for a frontend: no per-request access log (the router logs requests)."""
    out = copy.copy(args)
    out.disable_uvicorn_access_log = True
    out.uvicorn_log_level = "warning"
    return out


# ------------------------------------------------------------------------------------------- the child side
def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent (the replica) dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the prctl
        os._exit(0)


def run_frontend(spec: FrontendSpec, vllm_config: Any, args: argparse.Namespace, sock: socket.socket,
                 stats: Any, gate: tuple[str | None, bool, Any] | None = None) -> None:
    """Entry point of a frontend process: serve vLLM's OpenAI app as engine client ``spec.index``.

    ``gate`` is ``(secret, require_secret, shared in-flight value)`` for :class:`serve.engine_gate.FrontendGate`.
    """
    _die_with_parent()
    if gate is not None:
        from serve import engine_gate

        secret, require, shared = gate
        engine_gate.FRONTEND_GATE = (secret, engine_gate.SharedInflightCounter(shared), require)
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(f"{TITLE_PREFIX}:{spec.deployment}:{spec.index}")
    logging.basicConfig(level=logging.INFO, format=f"({TITLE_PREFIX}-{spec.index}) %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.run(_serve(spec, vllm_config, args, sock, stats))
    except KeyboardInterrupt:  # SIGTERM before uvicorn's handlers were installed
        pass


async def _serve(spec: FrontendSpec, vllm_config: Any, args: argparse.Namespace, sock: socket.socket,
                 stats_out: Any) -> None:
    import warnings

    from vllm.v1.engine.async_llm import AsyncLLM
    from vllm.v1.executor.abstract import Executor

    from serve.engine_stats import attach

    with warnings.catch_warnings():  # vLLM 0.29 moved these and warns on the old module
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.entrypoints.openai.api_server import build_and_serve

    client = {"input_address": spec.input_address, "output_address": spec.output_address}
    engine = AsyncLLM(
        vllm_config=vllm_config, executor_class=Executor.get_class(vllm_config),
        log_stats=not bool(getattr(args, "disable_log_stats", False)), log_requests=False,
        client_addresses=client, client_count=spec.count, client_index=spec.index,
    )
    copier: asyncio.Task[None] | None = None
    try:
        stats = attach(engine)
        if stats is not None:
            copier = asyncio.get_running_loop().create_task(_copy_stats(stats, stats_out))
        # Serves until SIGTERM (the replica's shutdown) or an engine failure (vLLM's watchdog stops it).
        shutdown = await build_and_serve(engine, spec.url, sock, args)
        await shutdown
    finally:
        if copier is not None:
            copier.cancel()
        engine.shutdown()


async def _copy_stats(stats: EngineStats, out: Any) -> None:
    while True:
        await asyncio.sleep(STATS_COPY_S)
        stats_to_array(stats, out)


async def start_for_replica(engine: Any, deployment: str, count: int, launched: Sequence[LaunchInfo],
                            host: str, timeout_s: float = 600.0, secret: str | None = None,
                            require_secret: bool = False) -> EngineFrontends:
    """Start ``count`` frontends for an engine replica whose engine was launched under :func:`engine_launch_hook`.

    Args:
        engine: Ray Serve LLM's engine object of the replica (``LLMServer.engine``): its vLLM ``AsyncLLM``
            (``_engine_client``) gives the finished config, its ``_vllm_args`` the args its app was built with.
        deployment: Deployment name.
        count: Frontend processes.
        launched: What the launch hook recorded.
        host: Address to serve on.
        timeout_s: Start-up limit.
        secret: The fleet's engine secret (the frontends refuse requests without it).
        require_secret: Whether it is required.

    Raises:
        RuntimeError: The engine was launched without the hook, or a frontend did not come up.
    """
    client = getattr(engine, "_engine_client", None)
    args = getattr(engine, "_vllm_args", None)
    if client is None or args is None or not launched:
        raise RuntimeError("engine frontends need Ray Serve LLM's vLLM engine launched under engine_launch_hook")
    frontends = EngineFrontends(deployment, count)
    try:
        frontends.start(vllm_config=client.vllm_config, args=args, launch=launched[-1], host=host, secret=secret,
                        require_secret=require_secret)
        await frontends.wait_ready(timeout_s)
    except BaseException:
        frontends.shutdown(grace_s=2.0)
        raise
    return frontends
