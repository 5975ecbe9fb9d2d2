"""Fleet config -> one Ray Serve application: an engine deployment per model plus the router ingress.

``build_app`` is the ``import_path`` of the rendered Serve config (``serve.app:build_app``), so
``serve run deploy/serve/demo.yaml``, ``qwen-serve up`` and the RayService all build the same application.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ray.serve.deployment import Application

    from serve.config import FleetConfig

logger = logging.getLogger(__name__)

APP_NAME = "qwen-serve"
ROUTER_DEPLOYMENT = "router"


def build_application(fleet: FleetConfig) -> Application:
    """Build the Serve application of a fleet.

    Args:
        fleet: The validated fleet config.

    Returns:
        The bound router ingress (which binds every engine deployment).
    """
    from ray import serve

    from serve.cluster import engine_version, router_actor_options, router_version, set_version
    from serve.deployments import build_engine_deployment
    from serve.router.ingress import RouterIngress

    if fleet.security.engine_auth:
        _ensure_engine_secret()
    engines = {spec.name: set_version(build_engine_deployment(spec, fleet), engine_version(spec, fleet))
               for spec in fleet.deployments}
    fleet_json = fleet.model_dump(mode="json")
    router = serve.deployment(
        RouterIngress,
        name=ROUTER_DEPLOYMENT,
        # The router does its own admission control per deployment; Serve's limit only bounds the replica.
        max_ongoing_requests=100_000,
        ray_actor_options=router_actor_options(fleet),
        num_replicas=fleet.ray.router_replicas,
        health_check_period_s=5,
        # A changed fleet reaches the live router through reconfigure (serve/hotswap.py), not a restart.
        user_config={"fleet": fleet_json},
    )
    return set_version(router.bind(fleet_json, engines), router_version(fleet))  # type: ignore[attr-defined]


def _ensure_engine_secret() -> None:
    """Make sure the fleet start has an engine secret (env, else Ray's KV, else a new one in the KV)."""
    import ray

    from serve.security import engine_secret

    if engine_secret.from_env() is not None:
        return
    if not ray.is_initialized():
        logger.warning("Ray is not initialised: the engine secret is made when the application is deployed")
        return
    engine_secret.ensure()


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for Serve configs (``import_path: serve.app:build_app``).

    Args:
        args: ``{"fleet": <FleetConfig as a dict>}``, ``{"config": <path to a fleet YAML>}`` or
            ``{"profile": <profile name>}``.

    Returns:
        The Serve application.
    """
    from serve.config import FleetConfig, load_fleet, load_profile

    if "fleet" in args:
        fleet = FleetConfig.from_dict(args["fleet"])
    elif "config" in args:
        fleet = load_fleet(args["config"])
    elif "profile" in args:
        fleet = load_profile(args["profile"])
    else:
        raise ValueError("build_app needs one of the args `fleet`, `config` or `profile`")
    return build_application(fleet)
