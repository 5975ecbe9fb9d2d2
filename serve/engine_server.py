"""The engine replica: Ray Serve LLM's LLMServer plus a private HTTP endpoint for the router's byte relay.

Besides serving, each replica takes part in Ray Serve's control plane:

- it reports its load to Serve's autoscaler (:meth:`QwenLLMServer.record_autoscaling_stats`, read by
  ``serve.autoscale.policy``);
- :meth:`QwenLLMServer.wake` is what the router calls through the deployment's handle to ask Serve for a
  replica of a deployment scaled to zero (a request queued on a handle is demand to Serve's autoscaler);
- when Serve removes it (downscale), :meth:`QwenLLMServer.__del__` marks its record ``draining`` so routers
  stop picking it, waits for its in-flight requests, then withdraws the record;
- its HTTP app answers only requests carrying the fleet's engine secret (``serve.engine_gate``).

Imported only inside Ray workers and builders (it imports Ray Serve LLM, which imports vLLM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from ray import serve
from ray.serve.llm import LLMServer

from serve import engine_record, frontends
from serve.autoscale.policy import KV_USAGE, ONGOING, RUNNING, WAITING
from serve.engine_gate import EngineGate, InflightCounter
from serve.engine_record import HEARTBEAT_S, EngineRecord
from serve.engine_stats import attach as attach_engine_stats
from serve.node_ports import reserve_window

logger = logging.getLogger(__name__)

#: A draining replica finishes once nothing was in flight, and nothing arrived, for this long (seconds): a
#: few router refresh intervals, so every router has seen the ``draining`` mark.
DRAIN_QUIET_S = 3.0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def engine_host() -> str:
    """Address the private engine endpoint binds to: ``QWEN_SERVE_ENGINE_HOST``, else Ray's node IP.

    Never ``0.0.0.0``: on a node with several interfaces the endpoint listens only on the one Ray's cluster
    traffic uses (or on what the operator names, e.g. 127.0.0.1 for a single-node stack).
    """
    import ray

    return os.environ.get("QWEN_SERVE_ENGINE_HOST") or str(ray.util.get_node_ip_address())


class QwenLLMServer(LLMServer):
    """One vLLM engine per replica, reachable by Ray handle and by a private HTTP port.

    The HTTP app is vLLM's own OpenAI server app over this replica's engine (what Ray Serve LLM's
    ``__serve_build_asgi_app__`` builds), served by uvicorn on the replica's event loop. Its address is
    published in Ray's internal KV so the router can find every replica of a deployment. With
    ``engine_frontends: N`` the same app also runs in N processes of its own (``serve.frontends``), published
    as the record's ``urls``; the router sends streams there.
    """

    async def __init__(self, llm_config: Any, *, deployment_name: str, engine_frontends: int = 0,  # type: ignore[misc]
                       drain_timeout_s: float = 60.0, engine_auth: bool = True, **kwargs: Any) -> None:
        # A replica that replaces a killed one first frees what its predecessor's engine still holds.
        from serve.orphans import reap_orphan_engines

        await asyncio.get_running_loop().run_in_executor(None, reap_orphan_engines)
        self._frontends: frontends.EngineFrontends | None = None
        self._port_window = reserve_window()  # this engine's own torch.distributed ports (serve/node_ports.py)
        first_port = self._port_window.first if self._port_window is not None else None
        with frontends.engine_launch_hook(engine_frontends, first_port) as launched:
            await super().__init__(llm_config, **kwargs)
        self._deployment_name = deployment_name
        self._drain_timeout_s = drain_timeout_s
        self._engine_auth = engine_auth
        self._inflight = InflightCounter()
        self._record: EngineRecord | None = None
        self._host = engine_host()
        if engine_frontends:
            from serve.security import engine_secret

            secret = await asyncio.get_running_loop().run_in_executor(None, engine_secret.load)
            self._frontends = await frontends.start_for_replica(
                self.engine, deployment_name, engine_frontends, launched, self._host, secret=secret,
                require_secret=engine_auth)
        self._stats = attach_engine_stats(getattr(self.engine, "_engine_client", None))
        self._http_task: asyncio.Task[None] | None = None
        self._key: bytes | None = None
        self._url = ""
        await self._start_http()

    async def _start_http(self) -> None:
        import uvicorn

        from serve.security import engine_secret

        secret = await asyncio.get_running_loop().run_in_executor(None, engine_secret.load)
        if secret is None and self._engine_auth:
            logger.error("engine %s: no engine secret (env %s or Ray KV); every request will get 401",
                         self._deployment_name, engine_secret.ENV)
        app = EngineGate(await self.__serve_build_asgi_app__(), secret, self._inflight,
                         require_secret=self._engine_auth)
        host = self._host
        port = _free_port(host)
        # log_config=None: uvicorn's default would run logging.config.dictConfig in this replica process,
        # which closes Ray Serve's replica log handlers (serve/replica_logging.py explains the damage).
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", log_config=None, access_log=False,
            lifespan="off", timeout_keep_alive=75, loop="none", backlog=4096,
        )
        server = uvicorn.Server(config)
        self._http_task = asyncio.get_running_loop().create_task(server.serve())
        for _ in range(400):
            if server.started:
                break
            if self._http_task.done():
                self._http_task.result()  # surfaces the bind error
            await asyncio.sleep(0.05)
        replica_id = serve.get_replica_context().replica_id.unique_id
        self._url = f"http://{host}:{port}"
        self._record = EngineRecord(deployment=self._deployment_name, replica=replica_id, url=self._url,
                                    pid=os.getpid(), started=time.time())
        self._key = self._record.key
        if self._frontends is not None:
            self._record.urls = list(self._frontends.urls)
            self._record.frontend_pids = self._frontends.pids()
        # Run-time LoRA adapters are loaded before the endpoint is published (serve/lora_runtime.py)
        from serve.lora_runtime import replica_adapters

        self._adapters = replica_adapters(dict(self._llm_config.engine_kwargs), self._deployment_name, replica_id,
                                          self._url, self._frontends.urls if self._frontends is not None else ())
        if self._adapters is not None:
            await self._adapters.sync()
        self._publish()
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeat_loop())
        logger.info("engine %s replica %s serving on %s", self._deployment_name, replica_id, self._url)

    def _publish(self) -> None:
        assert self._record is not None
        stats = self._stats
        if self._frontends is not None:
            stats = frontends.merge_stats([stats, *self._frontends.stats()])
        if stats is not None:
            self._record.stats = stats
        engine_record.publish(self._record)

    async def _heartbeat_loop(self) -> None:
        """Refresh the endpoint record so the router can drop records of replicas that died without a goodbye."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                if self._adapters is not None:  # hook(apisurface): catch run-time LoRA loads/unloads missed
                    await self._adapters.sync()
                await asyncio.get_running_loop().run_in_executor(None, self._publish)
            except Exception:  # noqa: BLE001 - the GCS may be briefly unreachable; try again next beat
                logger.warning("endpoint heartbeat failed for %s", self._deployment_name)

    async def check_health(self) -> None:
        """The engine's health (Ray Serve LLM) and, with frontends, that every frontend process is alive."""
        await super().check_health()
        if self._frontends is not None:
            self._frontends.check()

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """This replica's load for Ray Serve's autoscaler (``serve.autoscale.policy`` reads these names).

        In-flight requests are counted on the replica's own HTTP app; the engine's running, waiting and KV
        figures come from vLLM's scheduler (zero while nothing is in flight: an idle engine logs no steps).
        """
        ongoing = float(self._inflight.count + (self._frontends.inflight() if self._frontends is not None else 0))
        st = self._stats
        if st is None or ongoing == 0:
            return {ONGOING: ongoing, RUNNING: 0.0, WAITING: 0.0, KV_USAGE: 0.0}
        return {ONGOING: ongoing, RUNNING: float(st.running), WAITING: float(st.waiting),
                KV_USAGE: float(st.kv_usage)}

    async def wake(self) -> str:
        """Answer the router's wake-up call (it queues on the handle until Serve has started a replica).

        Returns:
            This replica's private URL (the router then finds the replica's record).
        """
        return self._url

    async def drain(self) -> bool:
        """Stop getting new requests and finish the in-flight ones (at most ``drain_timeout_s``).

        The record is marked ``draining`` first (routers re-read records every second and stop picking it);
        requests that still arrive meanwhile are served. Done when nothing is in flight and nothing arrived
        for a few seconds, so a router that read the record just before the change has moved on.

        Returns:
            True when every in-flight request finished.
        """
        if self._record is None:
            return True
        self._record.draining = True  # the heartbeat keeps publishing the mark until the record is withdrawn
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._publish)
        except Exception:  # noqa: BLE001 - the GCS may be going away too; drain anyway
            logger.warning("could not mark %s draining", self._deployment_name)
        logger.info("engine %s replica %s draining (%d in flight)", self._deployment_name, self._record.replica,
                    self._inflight.count)
        idle = await self._inflight.wait_idle(quiet_s=DRAIN_QUIET_S, timeout_s=self._drain_timeout_s)
        if not idle:
            logger.warning("engine %s: %d request(s) still in flight after %.0fs of draining",
                           self._deployment_name, self._inflight.count, self._drain_timeout_s)
        return idle

    async def __del__(self) -> None:
        try:
            await self.drain()
        except Exception:  # noqa: BLE001 - best effort during shutdown
            logger.warning("drain of %s failed", getattr(self, "_deployment_name", "?"))
        fronts = getattr(self, "_frontends", None)
        if fronts is not None:
            fronts.shutdown()
        window = getattr(self, "_port_window", None)
        if window is not None:
            window.release()
        beat = getattr(self, "_heartbeat", None)
        if beat is not None:
            beat.cancel()
        adapters = getattr(self, "_adapters", None)  # hook(apisurface)
        if adapters is not None:
            await adapters.close()
        key = getattr(self, "_key", None)  # None when __init__ failed before registering
        if key is not None:
            try:
                engine_record.withdraw(key)
            except Exception:  # noqa: BLE001 - best effort during shutdown
                logger.debug("could not deregister %s", self._key)
        await super().__del__()
