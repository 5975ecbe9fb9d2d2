"""The router as a Ray Serve ingress deployment (the app is built inside the replica).

Imported only where Ray is available (the app builder and Ray workers).
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

logger = logging.getLogger(__name__)


ROUTER_NICE = -5


def _raise_priority() -> None:
    """Give the router replica CPU priority over engine frontends on a shared host.

    Every request and every relayed chunk passes through this process; when engines saturate the cores (a CPU
    host, or a GPU host with few cores), a starved router turns into added TTFT and slow 429/503 answers.
    Needs CAP_SYS_NICE (root in most containers); without it the router runs at normal priority.
    """
    import os

    # Linux niceness is per thread: renice every thread of the process (the event loop runs on the main one;
    # threads started later inherit from their creator).
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, ROUTER_NICE)
        except OSError:
            logger.info("router priority unchanged for thread %s (no permission to renice)", tid)


#: Longest a new router replica waits for the previous one to release its port (Serve raises the router's
#: graceful shutdown to 35 s to cover its direct-ingress drain).
PORT_WAIT_S = 60.0


def _prepare_port(host: str) -> None:
    """Before Serve opens this replica's direct-ingress socket: allow rebinding over TIME_WAIT, and wait for
    a router being replaced to let go of its port (``serve.router.ingress_port``)."""
    from serve.router.ingress_port import allow_rebind, ingress_port_range, wait_for_free_port

    span = ingress_port_range()
    if span is None:  # Serve's proxy is the ingress: it binds its own socket
        return
    allow_rebind()
    wait_for_free_port(host, range(*span), PORT_WAIT_S)


@serve.ingress()
class RouterIngress:
    """Ray Serve ingress hosting :func:`serve.router.app.create_app` over the engines' Ray KV registry.

    Args:
        fleet: The fleet config as a JSON dict (what ``serveConfigV2`` carries).
        engines: Handles of the engine deployments, keyed by model name. Binding them makes Serve deploy the
            engines with the router; the router reaches them over their private HTTP endpoints.
    """

    def __init__(self, fleet: dict[str, Any], engines: dict[str, DeploymentHandle] | None = None) -> None:
        from serve.config import FleetConfig
        from serve.logs import configure_logging

        self._fleet = FleetConfig.from_dict(fleet)
        configure_logging(json_format=self._fleet.log_json)
        _raise_priority()
        _prepare_port(self._fleet.host)
        # Requests reach the engines over their private HTTP endpoints (serve.engine_record). The handles
        # serve one purpose: asking Serve for a replica of a deployment scaled to zero (serve.router.coldstart).
        self._engines = dict(engines or {})
        self._wake_handles: dict[str, DeploymentHandle] = {}

    async def __serve_build_asgi_app__(self) -> Any:
        from serve.hotswap import RouterHost
        from serve.router.app import create_app
        from serve.router.autoscale_view import ray_kv_reader
        from serve.router.upstream import RayKVRegistry
        from serve.security import engine_secret

        secret = engine_secret.load() if self._fleet.security.engine_auth else None
        if self._fleet.security.engine_auth and secret is None:
            logger.error("no engine secret (env %s or Ray KV): the engines will refuse every request",
                         engine_secret.ENV)
        registry = RayKVRegistry()
        # The router app is rebuilt in place when the fleet changes (``serve.hotswap``), with the same waker,
        # engine secret and registry.
        self._host = RouterHost(self._fleet, lambda fleet: create_app(
            fleet, registry, echo_request_id=False, waker=self._wake, engine_secret=secret,
            autoscale_reader=ray_kv_reader))
        return self._host.app

    async def reconfigure(self, user_config: Any) -> None:
        """Apply a changed fleet in place (``qwen-serve up`` on a running stack; see ``serve.hotswap``)."""
        host = getattr(self, "_host", None)
        if host is not None:
            await host.reconfigure(user_config)

    async def _wake(self, name: str) -> object:
        """Ask Serve for a replica of deployment ``name``: a call queued on its handle is demand to Serve's
        autoscaler (at zero replicas the handle reports it to the controller at once); returns when a replica
        answered."""
        handle = self._wake_handles.get(name)
        if handle is None:
            engine = self._engines.get(name)
            if engine is None:  # a deployment added by a rolling update after this router started
                from serve.app import APP_NAME
                from serve.deployments import engine_deployment_name

                engine = serve.get_deployment_handle(engine_deployment_name(name), APP_NAME)
            # Cached: each .options() copy is a handle with its own router and metrics pusher.
            handle = self._wake_handles[name] = engine.options(method_name="wake")
        return await handle.remote()
