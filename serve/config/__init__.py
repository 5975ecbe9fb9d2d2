"""The fleet config: pydantic models loaded from YAML, validation with readable errors, and profiles.

Examples:
    >>> from serve.config import load_profile
    >>> fleet = load_profile("demo")  # doctest: +SKIP
    >>> [d.name for d in fleet.deployments]  # doctest: +SKIP
    ['qwen3-general', 'qwen-coder', 'qwen3-moe', 'qwen3-embedding']
"""

from serve.config.deployment import DeploymentSpec
from serve.config.engine_keys import GPU_ONLY_KEYS, allowed_engine_keys
from serve.config.fleet import (
    PROFILES_DIR,
    ConfigError,
    FleetConfig,
    fleet_json_schema,
    format_validation_error,
    list_profiles,
    load_fleet,
    load_profile,
)
from serve.config.paths import expand_path, expand_vars
from serve.config.specs import (
    Accelerator,
    Autoscaling,
    GcsFaultTolerance,
    InputLimits,
    LeastLoadedRouting,
    LoraSpec,
    PrefixAffinityRouting,
    RateLimitSpec,
    RaySpec,
    ReplicaRouting,
    RoundRobinRouting,
    RouterSpec,
    SaturationSpec,
    SecuritySpec,
    TaskPolicy,
)

__all__ = [
    "GPU_ONLY_KEYS",
    "PROFILES_DIR",
    "Accelerator",
    "Autoscaling",
    "ConfigError",
    "DeploymentSpec",
    "FleetConfig",
    "GcsFaultTolerance",
    "InputLimits",
    "LoraSpec",
    "RateLimitSpec",
    "RaySpec",
    "LeastLoadedRouting",
    "PrefixAffinityRouting",
    "ReplicaRouting",
    "RoundRobinRouting",
    "RouterSpec",
    "SaturationSpec",
    "SecuritySpec",
    "TaskPolicy",
    "allowed_engine_keys",
    "expand_path",
    "expand_vars",
    "fleet_json_schema",
    "format_validation_error",
    "list_profiles",
    "load_fleet",
    "load_profile",
]
