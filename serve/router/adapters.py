"""LoRA adapters loaded and unloaded at run time, on every replica of a base deployment.

Admin endpoints (localhost, or an admin key from ``security.admin_keys_env`` / ``admin_keys_file``):

- ``POST /v1/load_lora_adapter`` ``{"lora_name": "<deployment>:<adapter>", "lora_path": DIR}`` (vLLM's body):
  the adapter is added to the wanted set in Ray's internal KV (:mod:`serve.lora_record`), so replicas started
  later load it too, then loaded on every live replica of the deployment through vLLM's own endpoint. The
  answer says, per replica, whether it loaded.
- ``POST /v1/unload_lora_adapter`` ``{"lora_name": ...}``: removed from the wanted set first (no new request
  goes to it), then unloaded on every replica.
- ``GET /admin/lora``: the wanted adapters and which replicas confirmed each.

The deployment needs ``lora.runtime: true``. ``/v1/models`` lists an adapter as soon as it is wanted; a request
for it goes only to replicas that confirmed the load (this router's own load call, or the replica's published
loaded set), never to one that does not have it yet: with none confirmed the answer is 503 with Retry-After.

The directory is checked on the router's node before any engine is asked (a PEFT adapter whose rank fits the
deployment's ``max_lora_rank``), so on a multi-node cluster adapters live on storage every node mounts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from serve.lora_record import AdapterStore, KVAdapterStore, MemoryAdapterStore, WantedAdapter
from serve.lora_runtime import post_adapter
from serve.router.policy import Decision
from serve.router.protocol import AuthenticationError, InvalidRequestError, ModelNotFoundError, RouterError
from serve.router.service import parse_body

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from serve.router.service import RouterService
    from serve.router.upstream import Endpoint

logger = logging.getLogger(__name__)

#: Seconds between reads of the KV records (wanted set, replicas' loaded sets).
REFRESH_S = 1.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LOCAL = ("127.0.0.1", "::1", "localhost")


class RuntimeAdapters:
    """The router's view of run-time adapters: what is wanted, and which replica has confirmed what.

    Args:
        service: The router service (fleet, registry, HTTP session).
        store: The KV records (:class:`KVAdapterStore` in the stack).
        admin_keys: Keys accepted by the admin endpoints from other hosts.
    """

    def __init__(self, service: RouterService, store: AdapterStore, admin_keys: Any = None) -> None:
        self.service = service
        self.store = store
        self.admin_keys = admin_keys
        self.enabled = {d.name: d for d in service.fleet.deployments if d.lora is not None and d.lora.runtime}
        self.wanted: dict[tuple[str, str], WantedAdapter] = {}
        self.confirmed: dict[tuple[str, str], set[str]] = {}  # (deployment, replica) -> adapters (own calls)
        self.published: dict[tuple[str, str], set[str]] = {}  # (deployment, replica) -> adapters (KV)
        self._refreshed = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # --- what the request path asks (hooks in DeploymentChooser and RouterService) ---------------------
    def listed(self, deployment: str, adapter: str) -> bool:
        """Whether ``deployment:adapter`` is a wanted run-time adapter (resolves and is in ``/v1/models``)."""
        self._maybe_refresh()
        return (deployment, adapter) in self.wanted

    def model_ids(self) -> list[str]:
        """The served ids of the wanted run-time adapters."""
        self._maybe_refresh()
        return [f"{d}:{a}" for d, a in sorted(self.wanted)]

    def has(self, deployment: str, replica: str, adapter: str) -> bool:
        """Whether a replica confirmed loading the adapter."""
        key = (deployment, replica)
        return adapter in self.confirmed.get(key, ()) or adapter in self.published.get(key, ())

    def blocked(self, decision: Decision) -> list[Endpoint]:
        """Replicas of the decided deployment that must not get this request (they lack its adapter)."""
        if decision.adapter is None or (decision.model, decision.adapter) not in self.wanted:
            return []
        return [ep for ep in self.service.registry.load(decision.model).endpoints
                if not self.has(decision.model, ep.replica, decision.adapter)]

    # --- the KV records ------------------------------------------------------------------------------
    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._refreshed < REFRESH_S or (self._refreshing and not self._refreshing.done()):
            return
        try:
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:  # no running loop (sync callers): read now
            self._apply(self.store.wanted(), self.store.loaded())

    async def refresh(self) -> None:
        """Re-read the wanted set and the replicas' loaded sets."""
        self._refreshed = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            wanted = await loop.run_in_executor(None, self.store.wanted)
            loaded = await loop.run_in_executor(None, self.store.loaded)
        except Exception:  # noqa: BLE001 - keep the last known view; the KV may be briefly unreachable
            logger.warning("could not read the run-time adapter records")
            return
        self._apply(wanted, loaded)

    def _apply(self, wanted: list[WantedAdapter], loaded: dict[tuple[str, str], set[str]]) -> None:
        self.wanted = {(w.deployment, w.adapter): w for w in wanted if w.deployment in self.enabled}
        self.published = loaded
        self._refreshed = time.monotonic()

    # --- admin ---------------------------------------------------------------------------------------
    def authorize(self, request: Request) -> None:
        """Localhost, or a valid admin key as ``Authorization: Bearer``.

        Raises:
            AuthenticationError: 401 otherwise.
        """
        if request.client is not None and request.client.host in _LOCAL:
            return
        from serve.security.keys import bearer_token

        token = bearer_token(request.headers.get("authorization"))
        if token is not None and self.admin_keys is not None and self.admin_keys.lookup(token) is not None:
            return
        raise AuthenticationError("Admin endpoints accept only localhost or an admin key "
                                  "(security.admin_keys_env / admin_keys_file).", code="admin_only")

    def _target(self, body: dict[str, Any]) -> tuple[str, str]:
        name = body.get("lora_name")
        if not isinstance(name, str) or name.count(":") != 1:
            raise InvalidRequestError("`lora_name` must be `<deployment>:<adapter>`.", param="lora_name",
                                      code="invalid_value")
        deployment, adapter = name.split(":")
        if deployment not in self.enabled:
            known = ", ".join(self.enabled) or "none"
            raise InvalidRequestError(f"Deployment `{deployment}` does not accept run-time adapters (set "
                                      f"`lora.runtime: true`); those that do: {known}.", param="lora_name",
                                      code="runtime_lora_disabled")
        if not _NAME.match(adapter):
            raise InvalidRequestError("The adapter name must be 1-64 letters, digits, '.', '_' or '-'.",
                                      param="lora_name", code="invalid_value")
        lora = self.enabled[deployment].lora
        if lora is not None and adapter in lora.adapters:
            raise InvalidRequestError(f"`{name}` is a static adapter of the fleet config; it cannot be changed "
                                      "at run time.", param="lora_name", code="static_adapter")
        return deployment, adapter

    def _check_path(self, deployment: str, path: Any) -> str:
        if not isinstance(path, str) or not path or len(path) > 4096:
            raise InvalidRequestError("`lora_path` must be the adapter's directory.", param="lora_path",
                                      code="invalid_value")
        from serve.lora import is_adapter

        if not is_adapter(path):
            raise InvalidRequestError("`lora_path` holds no PEFT adapter (adapter_config.json and "
                                      "adapter_model.safetensors) on the router's node.", param="lora_path",
                                      code="adapter_not_found")
        try:
            rank = int(json.loads((Path(path) / "adapter_config.json").read_text()).get("r", 0))
        except (OSError, ValueError, TypeError):
            raise InvalidRequestError("`lora_path`/adapter_config.json is not valid JSON.", param="lora_path",
                                      code="invalid_value") from None
        lora = self.enabled[deployment].lora
        if lora is not None and rank > lora.max_lora_rank:
            raise InvalidRequestError(f"The adapter's rank {rank} is above the deployment's max_lora_rank "
                                      f"{lora.max_lora_rank}.", param="lora_path", code="rank_too_large")
        return path

    async def load(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add an adapter to the wanted set and load it on every live replica of its deployment."""
        deployment, adapter = self._target(body)
        path = self._check_path(deployment, body.get("lora_path"))
        async with self._lock:
            await self.refresh()
            old = self.wanted.get((deployment, adapter))
            if old is not None and old.path != path:
                raise InvalidRequestError(f"`{deployment}:{adapter}` is already loaded from another directory; "
                                          "unload it first.", param="lora_name", code="adapter_exists")
            item = WantedAdapter(deployment, adapter, path, time.time())
            await asyncio.get_running_loop().run_in_executor(None, self.store.want, item)
            self.wanted[deployment, adapter] = item
            results = await self._on_replicas(deployment, "load", {"lora_name": f"{deployment}:{adapter}",
                                                                   "lora_path": path})
            for replica, (status, _) in results.items():
                if status == 200:
                    self.confirmed.setdefault((deployment, replica), set()).add(adapter)
            refused = [(s, m) for s, m in results.values() if 400 <= s < 500]
            if refused and not any(s == 200 for s, _ in results.values()):
                await self._forget(deployment, adapter)
                status, message = refused[0]
                raise RouterError(f"The engines refused the adapter: {_engine_message(message)}", status=400,
                                  param="lora_path", code="adapter_refused")
        logger.info("run-time adapter %s:%s loaded on %d of %d replicas", deployment, adapter,
                    sum(s == 200 for s, _ in results.values()), len(results))
        return _summary(deployment, adapter, results)

    async def unload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Remove an adapter from the wanted set, then unload it from every live replica."""
        deployment, adapter = self._target(body)
        async with self._lock:
            await self.refresh()
            if (deployment, adapter) not in self.wanted:
                raise ModelNotFoundError(f"No run-time adapter `{deployment}:{adapter}` is loaded.",
                                         param="lora_name", code="adapter_not_found")
            await self._forget(deployment, adapter)
            results = await self._on_replicas(deployment, "unload", {"lora_name": f"{deployment}:{adapter}"})
        return _summary(deployment, adapter, results)

    async def _forget(self, deployment: str, adapter: str) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.store.drop, deployment, adapter)
        self.wanted.pop((deployment, adapter), None)
        for key, names in self.confirmed.items():
            if key[0] == deployment:
                names.discard(adapter)

    async def _on_replicas(self, deployment: str, action: str, body: dict[str, Any]) -> dict[str, tuple[int, str]]:
        session = self.service.session
        assert session is not None, "router not started"
        endpoints = list(self.service.registry.load(deployment).endpoints)

        async def at(url: str) -> tuple[int, str]:
            try:
                async with asyncio.timeout(120):
                    return await post_adapter(session, url, action, body, self.service.engine_headers)
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                return 503, type(exc).__name__

        async def one(ep: Endpoint) -> tuple[int, str]:
            # A replica with engine frontends serves through each of them, and each keeps its own list of
            # adapters: the replica has the adapter only when its own app and every frontend have it.
            results = await asyncio.gather(*(at(u) for u in (ep.url, *ep.urls)))
            return next((r for r in results if r[0] != 200), results[0])

        statuses = await asyncio.gather(*(one(ep) for ep in endpoints))
        return {ep.replica: st for ep, st in zip(endpoints, statuses, strict=True)}

    def snapshot(self) -> dict[str, Any]:
        """The wanted adapters and the replicas that confirmed each (``GET /admin/lora``)."""
        out: list[dict[str, Any]] = []
        for (deployment, adapter), item in sorted(self.wanted.items()):
            replicas = [ep.replica for ep in self.service.registry.load(deployment).endpoints]
            out.append({"id": f"{deployment}:{adapter}", "path": item.path,
                        "replicas": {r: self.has(deployment, r, adapter) for r in replicas}})
        return {"deployments": sorted(self.enabled), "adapters": out}


def _engine_message(message: str) -> str:
    try:
        data = json.loads(message)
        return str(data.get("error", {}).get("message") or data.get("detail") or message)[:300]
    except (ValueError, AttributeError):
        return message[:300]


def _summary(deployment: str, adapter: str, results: dict[str, tuple[int, str]]) -> dict[str, Any]:
    return {"lora_name": f"{deployment}:{adapter}",
            "replicas": {r: "ok" if s == 200 else f"failed ({s}): {_engine_message(m)}" for r, (s, m) in results.items()}}


def register_adapter_routes(app: FastAPI, service: RouterService) -> RuntimeAdapters | None:
    """Add the run-time LoRA admin routes and wire the adapters into the policy and the service.

    Returns:
        The :class:`RuntimeAdapters`, or None when no deployment has ``lora.runtime`` (no routes then).
    """
    if not any(d.lora is not None and d.lora.runtime for d in service.fleet.deployments):
        return None
    from serve.router.upstream import RayKVRegistry

    sec = service.fleet.security
    keys = None
    if sec.admin_keys_env or sec.admin_keys_file:
        from serve.security.keys import KeyStore

        keys = KeyStore.from_sources(sec.admin_keys_env, sec.admin_keys_file)
    store: AdapterStore = KVAdapterStore() if isinstance(service.registry, RayKVRegistry) else MemoryAdapterStore()
    adapters = RuntimeAdapters(service, store, keys)
    service.adapters = adapters
    service.chooser.runtime_adapters = adapters

    async def load(request: Request) -> Response:
        adapters.authorize(request)
        return JSONResponse(await adapters.load(parse_body(await request.body())))

    async def unload(request: Request) -> Response:
        adapters.authorize(request)
        return JSONResponse(await adapters.unload(parse_body(await request.body())))

    async def listing(request: Request) -> Response:
        adapters.authorize(request)
        await adapters.refresh()
        return JSONResponse(adapters.snapshot())

    app.add_api_route("/v1/load_lora_adapter", load, methods=["POST"], include_in_schema=False)
    app.add_api_route("/v1/unload_lora_adapter", unload, methods=["POST"], include_in_schema=False)
    app.add_api_route("/admin/lora", listing, methods=["GET"], include_in_schema=False)
    return adapters
