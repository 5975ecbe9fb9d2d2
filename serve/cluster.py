"""The stack on a Ray cluster: which cluster to use, where replicas go, and versions for in-place updates.

Pure functions over the fleet config (no Ray import at module level), used by ``serve/stack.py`` (start or
join), ``serve/app.py`` (router placement, versions) and ``serve/deployments.py`` (engine placement).

- **Address.** ``qwen-serve up --address`` beats ``RAY_ADDRESS``, which beats the fleet's ``ray.address``;
  with none of them, ``up`` starts its own local head (and ``down`` stops it). A joined cluster belongs to
  someone else: ``down`` removes the application only.
- **Placement.** An engine replica asks for its accelerator plus the deployment's custom resources
  (``accelerator.resources``), added to its placement group's first bundle, where Ray Serve LLM starts the
  replica actor: the engine lands on a node that advertises them. The router asks for one CPU plus
  ``ray.router_resources``, or the head node's built-in resource (``ray.router_placement: head``).
- **Versions.** Ray Serve restarts a deployment's replicas when its version changes, and ``serve.run``
  draws a random version unless one is given. Each engine gets a version hashed from its own settings, so
  ``qwen-serve up`` with a changed fleet restarts only the engines whose settings changed. The router's
  version covers its code and actor options only; the fleet reaches it as ``user_config`` and is applied
  in place by ``serve.hotswap`` (no restart, so the port it listens on never goes away).
- **Node failure detection.** The GCS declares a node dead after :data:`NODE_HEALTH_ENV`'s missed health
  checks; only then are the actors on it dead for Ray and its resources out of the scheduler's view. For a
  host that goes silent (calls to its replicas hang rather than fail) that is what tells Serve the replicas
  are gone.
  The stack's own head (``serve/stack.py``), the RayService head pod (``serve/render.py``, the Helm chart's
  ``rayCluster.head.nodeHealthCheck``) and the test cluster (``bench/multinode/cluster.py``) set them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from serve.config import DeploymentSpec, FleetConfig

logger = logging.getLogger(__name__)

#: Ray's built-in resource of the head node (present on every Ray >= 2.7 head).
HEAD_NODE_RESOURCE = "node:__internal_head__"
#: The share of a custom resource a replica takes when pinned by a label: many replicas fit on one node.
_LABEL_SHARE = 0.001
#: GCS settings (read by the head's GCS server at start) for how fast a lost node is declared dead: a health
#: check of every raylet each second, 3 s to answer, dead after 5 misses in a row. That is about 5 s for a node
#: whose raylet is gone (connections refused) and about 20 s for a host that stopped answering. Ray's defaults
#: (every 3 s, 10 s timeout, 5 misses) take 15 s and about a minute. Five misses in a row still mean a
#: raylet that answered nothing for 5 to 15 s, so a busy node is not declared dead.
NODE_HEALTH_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "5",
}


def resolve_address(cli_address: str | None, fleet: FleetConfig) -> str | None:
    """The Ray cluster to join: ``--address``, else ``RAY_ADDRESS``, else ``ray.address``; None starts one.

    Args:
        cli_address: ``qwen-serve up --address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``).
        fleet: The fleet config.

    Returns:
        The address to pass to ``ray.init``, or None for a stack-owned local head.
    """
    for value in (cli_address, os.environ.get("RAY_ADDRESS"), fleet.ray.address):
        if value and value.strip():
            return value.strip()
    return None


def engine_bundles(spec: DeploymentSpec) -> list[dict[str, float]] | None:
    """Placement-group bundles of one engine replica (None: Ray Serve LLM's default for GPUs).

    The deployment's custom resources go into the first bundle, where the replica actor itself runs.

    Args:
        spec: The fleet entry.

    Returns:
        The bundles, or None when the deployment asks for nothing beyond Ray Serve LLM's GPU default.
    """
    custom = dict(spec.accelerator.resources)
    if spec.accelerator.type == "cpu":
        # Without an explicit bundle Ray Serve LLM asks for a GPU and waits forever.
        return [{"CPU": 1.0, **custom}]
    fraction = spec.accelerator.gpu_fraction
    if fraction is not None:
        return [{"CPU": 1.0, "GPU": fraction, **custom}]
    if not custom:
        return None
    return [{"GPU": 1.0, **custom}] + [{"GPU": 1.0} for _ in range(spec.accelerator.count - 1)]


def router_actor_options(fleet: FleetConfig) -> dict[str, Any]:
    """Ray actor options of the router replica: one CPU, its placement resources, its runtime env."""
    resources = dict(fleet.ray.router_resources)
    if fleet.ray.router_placement == "head":
        resources[HEAD_NODE_RESOURCE] = _LABEL_SHARE
    from serve.stack import ingress_env

    env = {
        # The direct-ingress settings, also on a joined cluster whose nodes were started without them.
        **ingress_env(fleet),
        # The router's own code runs on the replica's main event loop (where direct ingress serves HTTP),
        # so relayed chunks never hop threads; engines keep Serve's default.
        "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    }
    from serve.replica_logging import hook_env

    # The setup hook keeps Serve's replica log handlers working through dictConfig calls (serve/replica_logging.py).
    env.update(hook_env())
    options: dict[str, Any] = {"num_cpus": 1, "runtime_env": {"env_vars": env}}
    if resources:
        options["resources"] = resources
    return options


#: Source files whose code runs in engine replicas; everything else under ``serve/`` is router code.
_ENGINE_CODE = ("engine_server.py", "engine_record.py", "engine_stats.py", "deployments.py", "orphans.py", "lora.py",
                "replica_logging.py")
_PACKAGE = Path(__file__).resolve().parent


def code_fingerprint(engine: bool) -> str:
    """Hash of the engine's (or the router's) source files, so a code upgrade restarts what runs it."""
    if engine:
        files = [_PACKAGE / name for name in _ENGINE_CODE]
    else:
        files = sorted(p for p in _PACKAGE.rglob("*.py") if p.name not in _ENGINE_CODE)
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _digest(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def engine_version(spec: DeploymentSpec, fleet: FleetConfig) -> str:
    """Version of an engine deployment: changes exactly when its settings, the runtime env or the engine
    code change."""
    return _digest({"spec": spec.model_dump(mode="json"), "env": fleet.ray.env, "code": code_fingerprint(True)})


def router_version(fleet: FleetConfig) -> str:
    """Version of the router deployment: its actor options and code (the fleet itself is its user_config)."""
    return _digest({"router": router_actor_options(fleet), "replicas": fleet.ray.router_replicas,
                    "code": code_fingerprint(False)})


def set_version(app: Any, version: str) -> Any:
    """Give a bound Serve deployment a fixed version (``serve.run`` otherwise draws a random one).

    ``Deployment.options(version=...)`` is gone from the public API, but ``serve.run`` still honours a
    deployment's stored version, which is what makes an unchanged deployment keep its replicas.

    Args:
        app: A bound deployment (``Application``).
        version: The version string.

    Returns:
        ``app``.
    """
    deployment = getattr(app, "_bound_deployment", None)
    if deployment is None or not hasattr(deployment, "_version"):
        logger.warning("this Ray Serve has no deployment versions: `up` on a running stack restarts every replica")
        return app
    deployment._version = version
    return app


def job_env(fleet: FleetConfig, ingress: dict[str, str]) -> dict[str, str]:
    """Environment of the driver's job when joining a cluster: what the Serve controller and every replica
    need (the head of a stack-owned cluster gets the same through ``ray start``'s environment)."""
    from serve.stack import RAY_ENV

    return {**RAY_ENV, **fleet.ray.env, **ingress}
