"""The engine replica's side of run-time LoRA: serve the wanted adapters, publish what is loaded.

:class:`ReplicaAdapters` runs in each engine replica of a deployment with ``lora.runtime`` (the engine's
environment has ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``). :meth:`ReplicaAdapters.sync` compares what vLLM serves
(its own ``/v1/models``) with the wanted set (:mod:`serve.lora_record`), loads what is missing and unloads the
run-time adapters no longer wanted through vLLM's ``/v1/load_lora_adapter`` / ``/v1/unload_lora_adapter`` on
the replica's private app and on each of its engine frontends (``engine_frontends``: every frontend process
keeps its own adapter list), then publishes the set that all of them serve. The replica calls it once before it publishes its
endpoint (so a new replica serves every adapter before the router can pick it) and then with each heartbeat
(to catch a load or unload it missed). Static adapters (``lora_modules``) are never touched.

Order matters against the router's own load calls: what vLLM serves is read *before* the wanted set, so an
adapter the router adds in between is never mistaken for one to unload.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import aiohttp

from serve.lora_record import AdapterStore, KVAdapterStore

logger = logging.getLogger(__name__)

#: The engine environment variable that enables vLLM's run-time LoRA endpoints.
RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


async def served_adapters(session: aiohttp.ClientSession, base_url: str, deployment: str) -> set[str]:
    """Adapter names vLLM serves for ``deployment`` (from its ``/v1/models``: ids ``<deployment>:<name>``)."""
    async with session.get(base_url + "/v1/models") as resp:
        resp.raise_for_status()
        data = await resp.json()
    prefix = deployment + ":"
    return {str(m["id"])[len(prefix):] for m in data.get("data", [])
            if isinstance(m, dict) and str(m.get("id", "")).startswith(prefix)}


async def post_adapter(session: aiohttp.ClientSession, base_url: str, action: str, body: dict[str, Any],
                       headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST vLLM's ``/v1/<action>_lora_adapter``; returns (status, message). "Already loaded" counts as 200.

    ``headers`` carry the engine secret (engines answer only the router, ``serve.engine_gate``)."""
    async with session.post(f"{base_url}/v1/{action}_lora_adapter", json=body, headers=headers) as resp:
        text = await resp.text()
    if resp.status == 400 and "already been loaded" in text:
        return 200, text
    return resp.status, text[:500]


class ReplicaAdapters:
    """Keeps one engine replica's run-time adapters in line with the wanted set.

    Args:
        deployment: The deployment (vLLM's served model name).
        replica: This replica's id.
        base_url: The replica's private vLLM app.
        static: Names of the deployment's static adapters (left alone).
        store: The records (default: Ray's internal KV).
        frontend_urls: The replica's engine frontends (``engine_frontends``), kept in line too.
    """

    def __init__(self, deployment: str, replica: str, base_url: str, static: set[str],
                 store: AdapterStore | None = None, frontend_urls: list[str] | tuple[str, ...] = ()) -> None:
        self.deployment = deployment
        self.replica = replica
        self.base_url = base_url
        self.urls = [base_url, *frontend_urls]
        self.static = set(static)
        self.store = store or KVAdapterStore()
        self.loaded: set[str] = set()
        self._session: aiohttp.ClientSession | None = None

    async def sync(self) -> set[str]:
        """Load the missing wanted adapters, unload unwanted run-time ones, publish the loaded set.

        Never raises: a failure is logged and the last loaded set kept, so the replica's heartbeat (which calls
        this first) goes on, and the router only routes an adapter to replicas that confirmed it.
        """
        try:
            return await self._sync()
        except Exception:  # noqa: BLE001 - the engine app or the KV may be briefly unreachable; retry next beat
            logger.warning("run-time adapter sync failed on replica %s of %s", self.replica, self.deployment)
            return self.loaded

    async def _sync(self) -> set[str]:
        if self._session is None:
            # The replica's own app is behind the engine gate: this session carries the fleet's engine secret.
            from serve.security import engine_secret

            secret = engine_secret.load()
            headers = {engine_secret.HEADER: secret} if secret else {}
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120), headers=headers)
        loop = asyncio.get_running_loop()
        # What every app serves is read before the wanted set (see the module docstring).
        presents = [await served_adapters(self._session, url, self.deployment) - self.static for url in self.urls]
        wanted = {w.adapter: w.path for w in await loop.run_in_executor(None, self.store.wanted, self.deployment)}
        served = set(wanted)
        for url, present in zip(self.urls, presents, strict=True):
            served &= await self._align(url, present, wanted)
        self.loaded = served
        await loop.run_in_executor(None, self.store.publish_loaded, self.deployment, self.replica, self.loaded)
        return self.loaded

    async def _align(self, url: str, present: set[str], wanted: dict[str, str]) -> set[str]:
        """Load the wanted adapters missing at ``url`` and unload the unwanted run-time ones; what it serves now."""
        assert self._session is not None
        for name, path in wanted.items():
            if name in present:
                continue
            status, message = await post_adapter(self._session, url, "load",
                                                 {"lora_name": f"{self.deployment}:{name}", "lora_path": path})
            if status == 200:
                present.add(name)
                logger.info("replica %s of %s loaded run-time adapter %s at %s", self.replica, self.deployment,
                            name, url)
            else:
                logger.warning("replica %s of %s could not load adapter %s at %s (%d): %s", self.replica,
                               self.deployment, name, url, status, message)
        for name in present - set(wanted):
            status, _ = await post_adapter(self._session, url, "unload", {"lora_name": f"{self.deployment}:{name}"})
            if status in (200, 404):
                present.discard(name)
        return present

    async def close(self) -> None:
        """Withdraw the loaded set and close the HTTP session (the replica is going away)."""
        try:
            self.store.withdraw_loaded(self.deployment, self.replica)
        except Exception:  # noqa: BLE001 - best effort during shutdown
            logger.debug("could not withdraw the loaded adapters of %s", self.replica)
        if self._session is not None:
            await self._session.close()


def replica_adapters(engine_kwargs: dict[str, Any], deployment: str, replica: str, base_url: str,
                     frontend_urls: list[str] | tuple[str, ...] = ()) -> ReplicaAdapters | None:
    """The run-time adapter keeper of an engine replica (its own app and its engine frontends), or None when its
    deployment has no run-time LoRA."""
    if os.environ.get(RUNTIME_ENV, "").lower() not in ("1", "true") or not engine_kwargs.get("enable_lora"):
        return None
    prefix = deployment + ":"
    static = {str(m.get("name", ""))[len(prefix):] for m in engine_kwargs.get("lora_modules") or []
              if isinstance(m, dict)}
    return ReplicaAdapters(deployment, replica, base_url, static, frontend_urls=frontend_urls)
