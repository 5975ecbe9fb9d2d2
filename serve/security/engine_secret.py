"""The engine secret: engine replicas answer only requests that carry it, and only the router sends it.

Each engine replica serves vLLM's OpenAI app on a private port (``serve.engine_server``). Without a check, any
process that reaches that port gets what the router would refuse (no API key, ``n: 50``, ...). So every fleet
start has one secret:

- ``qwen-serve up`` makes a fresh one (:func:`rotate`) and stores it in Ray's internal KV (readable only by
  processes already inside the Ray cluster, which can run code there anyway);
- on Kubernetes it comes from a Secret, as the ``QWEN_SERVE_ENGINE_SECRET`` environment variable of every pod
  (the Helm chart wires it); an environment value always wins over the KV;
- ``serve.app.build_application`` calls :func:`ensure`, so ``serve run`` / ``serve deploy`` of a rendered
  config also get one.

The router sends it in the :data:`HEADER` header; engines compare it in constant time and answer 401 before
vLLM sees the request (``serve.engine_gate``). The secret is never logged, never in ``/v1/status`` and never in
a rendered config (those only name the Kubernetes Secret).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets

logger = logging.getLogger(__name__)

#: Request header carrying the secret from the router to the engines.
HEADER = "x-qwen-engine-secret"
#: Environment variable that provides the secret (a Kubernetes Secret in the chart); wins over the KV.
ENV = "QWEN_SERVE_ENGINE_SECRET"
#: Internal-KV key and namespace of the fleet start's secret.
KV_KEY = b"qwen-serve/engine-secret"
KV_NAMESPACE = "qwen-serve"


def generate() -> str:
    """A new random secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def from_env() -> str | None:
    """The secret from :data:`ENV`, or None when unset or blank."""
    value = os.environ.get(ENV, "").strip()
    return value or None


def _kv_get() -> str | None:
    from ray.experimental import internal_kv

    raw = internal_kv._internal_kv_get(KV_KEY, namespace=KV_NAMESPACE)
    return raw.decode() if raw else None


def _kv_put(value: str) -> None:
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(KV_KEY, value.encode(), overwrite=True, namespace=KV_NAMESPACE)


def load() -> str | None:
    """The fleet's secret: :data:`ENV`, else the one in Ray's internal KV (needs a connected Ray), else None."""
    value = from_env()
    if value is not None:
        return value
    try:
        return _kv_get()
    except Exception:  # noqa: BLE001 - Ray not initialised here
        logger.warning("engine secret: Ray's internal KV is not reachable")
        return None


def ensure() -> str:
    """The fleet's secret, making and storing one in the KV when there is none yet (app build time)."""
    value = load()
    if value is None:
        value = generate()
        _kv_put(value)
    return value


def rotate() -> None:
    """Store a fresh secret for a new fleet start, unless the environment provides one."""
    if from_env() is None:
        _kv_put(generate())


def matches(provided: str | bytes | None, secret: str) -> bool:
    """Whether ``provided`` is ``secret`` (constant-time comparison)."""
    if not provided or not secret:
        return False
    raw = provided if isinstance(provided, bytes) else provided.encode("latin-1", "replace")
    return hmac.compare_digest(raw, secret.encode())
