"""Run-time LoRA adapters in Ray's internal KV, next to the engine records (:mod:`serve.engine_record`).

Two small records, one writer each:

- the **wanted** set, ``qwen-serve/lora/<deployment>/<adapter>`` -> ``{"path", "created"}``, written by the
  router's admin endpoint (:mod:`serve.router.adapters`): what every replica of the deployment should serve;
- the **loaded** set of one replica, ``qwen-serve/lora-loaded/<deployment>/<replica>`` -> ``{"adapters",
  "updated"}``, written by that engine replica (:mod:`serve.lora_runtime`) after vLLM confirmed each load.

A replica that starts loads the wanted set before it publishes its endpoint, so a replica added later (scale
up, restart) serves the adapters too; the router sends a request for a run-time adapter only to replicas whose
loaded set (or the router's own confirmed load call) has it.

Like :mod:`serve.engine_record`, this imports Ray only inside the KV functions; :class:`AdapterStore` is the
interface, :class:`KVAdapterStore` the real one and :class:`MemoryAdapterStore` the one for tests.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from dataclasses import dataclass

from serve.engine_record import KV_NAMESPACE

logger = logging.getLogger(__name__)

#: Prefix of the wanted adapters: ``<prefix><deployment>/<adapter>``.
WANTED_PREFIX = "qwen-serve/lora/"
#: Prefix of each replica's loaded adapters: ``<prefix><deployment>/<replica>``.
LOADED_PREFIX = "qwen-serve/lora-loaded/"


@dataclass(frozen=True)
class WantedAdapter:
    """An adapter every replica of a deployment should serve.

    Attributes:
        deployment: The base deployment.
        adapter: The adapter's name (served as ``<deployment>:<adapter>``).
        path: Its directory on the engine nodes.
        created: Wall time it was added.
    """

    deployment: str
    adapter: str
    path: str
    created: float = 0.0


class AdapterStore(abc.ABC):
    """Where the wanted and loaded adapter sets live."""

    @abc.abstractmethod
    def wanted(self, deployment: str | None = None) -> list[WantedAdapter]:
        """The wanted adapters (of one deployment, or all)."""

    @abc.abstractmethod
    def want(self, item: WantedAdapter) -> None:
        """Add (or replace) a wanted adapter."""

    @abc.abstractmethod
    def drop(self, deployment: str, adapter: str) -> None:
        """Remove a wanted adapter."""

    @abc.abstractmethod
    def loaded(self) -> dict[tuple[str, str], set[str]]:
        """Every replica's loaded run-time adapters: ``{(deployment, replica): {adapter, ...}}``."""

    @abc.abstractmethod
    def publish_loaded(self, deployment: str, replica: str, adapters: set[str]) -> None:
        """Record what one replica has loaded (written by that replica only)."""

    @abc.abstractmethod
    def withdraw_loaded(self, deployment: str, replica: str) -> None:
        """Forget a replica's loaded set (the replica is going away)."""


def _split(key: bytes | str, prefix: str) -> tuple[str, str] | None:
    text = key.decode() if isinstance(key, bytes) else key
    first, sep, second = text.removeprefix(prefix).partition("/")
    return (first, second) if sep and first and second else None


class KVAdapterStore(AdapterStore):
    """The records in Ray's internal KV (needs a connected Ray: router and engine replicas)."""

    def wanted(self, deployment: str | None = None) -> list[WantedAdapter]:
        from ray.experimental import internal_kv

        prefix = WANTED_PREFIX + (f"{deployment}/" if deployment else "")
        out: list[WantedAdapter] = []
        for key in internal_kv._internal_kv_list(prefix, namespace=KV_NAMESPACE):
            names = _split(key, WANTED_PREFIX)
            raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
            try:
                data = json.loads(raw) if raw else None
                if names is not None and isinstance(data, dict):
                    out.append(WantedAdapter(names[0], names[1], str(data["path"]), float(data.get("created", 0))))
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a malformed run-time adapter record")
        return out

    def want(self, item: WantedAdapter) -> None:
        from ray.experimental import internal_kv

        value = json.dumps({"path": item.path, "created": item.created or time.time()}).encode()
        internal_kv._internal_kv_put(f"{WANTED_PREFIX}{item.deployment}/{item.adapter}".encode(), value,
                                     namespace=KV_NAMESPACE)

    def drop(self, deployment: str, adapter: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(f"{WANTED_PREFIX}{deployment}/{adapter}".encode(), namespace=KV_NAMESPACE)

    def loaded(self) -> dict[tuple[str, str], set[str]]:
        from ray.experimental import internal_kv

        out: dict[tuple[str, str], set[str]] = {}
        for key in internal_kv._internal_kv_list(LOADED_PREFIX, namespace=KV_NAMESPACE):
            names = _split(key, LOADED_PREFIX)
            raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
            try:
                data = json.loads(raw) if raw else None
                if names is not None and isinstance(data, dict):
                    out[names] = {str(a) for a in data.get("adapters", [])}
            except (ValueError, TypeError):
                logger.warning("ignoring a malformed loaded-adapters record")
        return out

    def publish_loaded(self, deployment: str, replica: str, adapters: set[str]) -> None:
        from ray.experimental import internal_kv

        value = json.dumps({"adapters": sorted(adapters), "updated": time.time()}).encode()
        internal_kv._internal_kv_put(f"{LOADED_PREFIX}{deployment}/{replica}".encode(), value,
                                     namespace=KV_NAMESPACE)

    def withdraw_loaded(self, deployment: str, replica: str) -> None:
        from ray.experimental import internal_kv

        internal_kv._internal_kv_del(f"{LOADED_PREFIX}{deployment}/{replica}".encode(), namespace=KV_NAMESPACE)


class MemoryAdapterStore(AdapterStore):
    """The same records in a dict (unit tests; routers over a static registry)."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[str, str], WantedAdapter] = {}
        self._loaded: dict[tuple[str, str], set[str]] = {}

    def wanted(self, deployment: str | None = None) -> list[WantedAdapter]:
        return [w for w in self._wanted.values() if deployment is None or w.deployment == deployment]

    def want(self, item: WantedAdapter) -> None:
        self._wanted[item.deployment, item.adapter] = item

    def drop(self, deployment: str, adapter: str) -> None:
        self._wanted.pop((deployment, adapter), None)

    def loaded(self) -> dict[tuple[str, str], set[str]]:
        return {k: set(v) for k, v in self._loaded.items()}

    def publish_loaded(self, deployment: str, replica: str, adapters: set[str]) -> None:
        self._loaded[deployment, replica] = set(adapters)

    def withdraw_loaded(self, deployment: str, replica: str) -> None:
        self._loaded.pop((deployment, replica), None)
