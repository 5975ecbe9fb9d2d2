"""Render a fleet config into a Ray Serve config or a KubeRay RayService (``qwen-serve render``).

One source of truth: the Serve application built here is ``serve.app:build_app`` with the whole fleet as
``args.fleet`` (``FleetConfig.model_dump(mode="json")``); the Helm chart (helm/qwen-serve) renders the same
document from its ``fleet:`` values, and tests/helm proves the two agree.

``render_rayservice`` derives a cluster shape from the fleet (one GPU worker group per GPU type, a CPU group
for CPU engines). The Helm chart is the configurable, production path; this is the quick path
(``qwen-serve render --format rayservice | kubectl apply -f -``) and what deploy/kustomize starts from.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import yaml

if TYPE_CHECKING:
    from serve.config import DeploymentSpec, FleetConfig

logger = logging.getLogger(__name__)

APP_NAME = "qwen-serve"
IMPORT_PATH = "serve.app:build_app"
RAY_VERSION = "2.60.0"
IMAGE_REPOSITORY = "ghcr.io/qwen-serve/qwen-serve"
GPU_RESOURCE = "nvidia.com/gpu"
MODEL_CACHE_PATH = "/data/hf-cache"
FORMATS = ("serve", "rayservice")

# Per-pod sizing of derived worker groups (edit the output, or use the Helm chart, for real clusters).
CPU_PER_GPU = 8
MEMORY_GI_PER_GPU = 64
SHM_GI_PER_GPU = 8
CPU_ENGINE_POD = {"cpu": "8", "memory": "16Gi", "shm": "4Gi"}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("qwen-serve")
    except Exception:  # not installed (source checkout)
        return "0.1.0"


def fleet_args(fleet: FleetConfig) -> dict[str, Any]:
    """The fleet as the Serve app's ``args.fleet``: JSON types, YAML key names (aliases, e.g. ``capabilities``),
    so it validates against ``fleet_json_schema()`` (the chart's values schema) as well as FleetConfig."""
    return fleet.model_dump(mode="json", by_alias=True)


def render_serve_config(fleet: FleetConfig, *, host: str = "0.0.0.0", port: int = 8000) -> dict[str, Any]:
    """Build the Ray Serve config (``serve deploy`` / ``serve run`` / RayService ``serveConfigV2``).

    Args:
        fleet: The validated fleet config.
        host: HTTP bind address of the Serve proxies (0.0.0.0 in pods).
        port: HTTP port of the Serve proxies.

    Returns:
        A dict valid under ``ray.serve.schema.ServeDeploySchema``.
    """
    return {
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {"fleet": fleet_args(fleet)},
                "runtime_env": {"env_vars": dict(fleet.ray.env)},
            }
        ],
    }


@dataclass(frozen=True)
class WorkerGroupPlan:
    """A Ray worker group derived from the fleet.

    Attributes:
        name: Group name (``gpu-h200``, ``gpu``, ``cpu``).
        gpus: GPUs per pod (0 for CPU groups).
        min_pods: Pods needed for the minimum replica counts.
        max_pods: Pods needed for the maximum replica counts.
        cpu: CPU request/limit per pod.
        memory: Memory request/limit per pod.
        shm: Size of the memory-backed /dev/shm.
    """

    name: str
    gpus: int
    min_pods: int
    max_pods: int
    cpu: str
    memory: str
    shm: str


def _replica_bounds(dep: DeploymentSpec) -> tuple[int, int]:
    if dep.autoscaling is not None:
        return dep.autoscaling.min_replicas, dep.autoscaling.max_replicas
    return dep.replicas, dep.replicas


def plan_worker_groups(fleet: FleetConfig) -> list[WorkerGroupPlan]:
    """Derive worker groups: one per GPU type (pods sized for the largest replica) plus one for CPU engines.

    Args:
        fleet: The validated fleet config.

    Returns:
        The worker groups, GPU groups first (sorted by name), then ``cpu``.
    """
    by_type: dict[str, list[DeploymentSpec]] = {}
    cpu_deps: list[DeploymentSpec] = []
    for dep in fleet.deployments:
        if dep.accelerator.type == "gpu":
            key = (dep.accelerator.gpu_type or "").lower()
            by_type.setdefault(key, []).append(dep)
        else:
            cpu_deps.append(dep)
    plans = [_gpu_group(key, deps) for key, deps in sorted(by_type.items())]
    if cpu_deps:
        lo = sum(_replica_bounds(d)[0] for d in cpu_deps)
        hi = sum(_replica_bounds(d)[1] for d in cpu_deps)
        pod = CPU_ENGINE_POD
        plans.append(WorkerGroupPlan("cpu", 0, lo, max(hi, 1), pod["cpu"], pod["memory"], pod["shm"]))
    return plans


def _gpus_per_replica(dep: DeploymentSpec) -> float:
    """GPUs one replica reserves in Ray (a fraction when several deployments share a GPU)."""
    fraction = getattr(dep.accelerator, "gpu_fraction", None)
    return float(fraction) if fraction else float(dep.accelerator.count)


def _gpu_group(gpu_type: str, deps: Iterable[DeploymentSpec]) -> WorkerGroupPlan:
    deps = list(deps)
    per_pod = max(d.accelerator.count for d in deps)
    lo = sum(_replica_bounds(d)[0] * _gpus_per_replica(d) for d in deps)
    hi = sum(_replica_bounds(d)[1] * _gpus_per_replica(d) for d in deps)
    name = f"gpu-{gpu_type}" if gpu_type else "gpu"
    return WorkerGroupPlan(
        name=name.replace(".", "-")[:20],
        gpus=per_pod,
        min_pods=math.ceil(round(lo / per_pod, 6)),
        max_pods=max(1, math.ceil(round(hi / per_pod, 6))),
        cpu=str(CPU_PER_GPU * per_pod),
        memory=f"{MEMORY_GI_PER_GPU * per_pod}Gi",
        shm=f"{SHM_GI_PER_GPU * per_pod}Gi",
    )


def _env(
    api_keys_env: str | None, api_keys_secret: str | None, hf_token_secret: str | None,
    engine_secret_secret: str | None = None,
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": MODEL_CACHE_PATH}]
    if hf_token_secret:
        ref = {"secretKeyRef": {"name": hf_token_secret, "key": "token"}}
        env += [{"name": "HF_TOKEN", "valueFrom": ref}, {"name": "HUGGING_FACE_HUB_TOKEN", "valueFrom": ref}]
    if api_keys_secret:
        ref = {"secretKeyRef": {"name": api_keys_secret, "key": "api-keys"}}
        env.append({"name": api_keys_env or "QWEN_SERVE_API_KEYS", "valueFrom": ref})
    if engine_secret_secret:  # else the application makes one per Ray cluster (serve.security.engine_secret)
        ref = {"secretKeyRef": {"name": engine_secret_secret, "key": "engine-secret"}}
        env.append({"name": "QWEN_SERVE_ENGINE_SECRET", "valueFrom": ref})
    return env


def _pod_template(
    *,
    labels: dict[str, str],
    container: str,
    image: str,
    env: list[dict[str, Any]],
    cpu: str,
    memory: str,
    shm: str,
    gpus: int,
    head: bool,
    cache_claim: str | None,
) -> dict[str, Any]:
    ports = [{"name": "serve", "containerPort": 8000}, {"name": "metrics", "containerPort": 8080}]
    if head:
        ports = [
            {"name": "gcs-server", "containerPort": 6379},
            {"name": "dashboard", "containerPort": 8265},
            {"name": "client", "containerPort": 10001},
            *ports,
        ]
    res: dict[str, dict[str, str]] = {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    }
    if gpus:
        res["requests"][GPU_RESOURCE] = res["limits"][GPU_RESOURCE] = str(gpus)
    cache: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": cache_claim}} if cache_claim else {"emptyDir": {}}
    )
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 100,
            "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": container,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "ports": ports,
                "env": env,
                "resources": res,
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [
                    {"name": "dshm", "mountPath": "/dev/shm"},
                    {"name": "ray-tmp", "mountPath": "/tmp/ray"},
                    {"name": "model-cache", "mountPath": MODEL_CACHE_PATH},
                ],
            }
        ],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
            {"name": "ray-tmp", "emptyDir": {}},
            {"name": "model-cache", **cache},
        ],
    }
    if gpus:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": labels}, "spec": spec}


def render_rayservice(
    fleet: FleetConfig,
    *,
    name: str = APP_NAME,
    namespace: str = "default",
    image: str | None = None,
    api_keys_secret: str | None = None,
    hf_token_secret: str | None = None,
    model_cache_claim: str | None = None,
    engine_secret_secret: str | None = None,
) -> dict[str, Any]:
    """Build a KubeRay ``ray.io/v1`` RayService for the fleet.

    Args:
        fleet: The validated fleet config.
        name: RayService name (KubeRay names the Serve service ``<name>-serve-svc``).
        namespace: Target namespace.
        image: qwen-serve image; default ``ghcr.io/qwen-serve/qwen-serve:<version>-gpu`` (``-cpu`` when no
            deployment uses GPUs).
        api_keys_secret: Secret (key ``api-keys``) exported as ``fleet.security.api_keys_env``.
        hf_token_secret: Secret (key ``token``) exported as ``HF_TOKEN``.
        model_cache_claim: PVC mounted as the Hugging Face cache; default an emptyDir per pod.
        engine_secret_secret: Secret (key ``engine-secret``) exported as ``QWEN_SERVE_ENGINE_SECRET``; default:
            the application makes one per Ray cluster.

    Returns:
        The RayService manifest as a dict.
    """
    plans = plan_worker_groups(fleet)
    flavor = "gpu" if any(p.gpus for p in plans) else "cpu"
    image = image or f"{IMAGE_REPOSITORY}:{_version()}-{flavor}"
    env = _env(fleet.security.api_keys_env, api_keys_secret, hf_token_secret, engine_secret_secret)
    base = {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": name}
    common: dict[str, Any] = {"image": image, "env": env, "cache_claim": model_cache_claim}
    # The head's GCS declares a lost node dead after the stack's health-check settings (serve/cluster.py).
    from serve.cluster import NODE_HEALTH_ENV

    head_env = copy.deepcopy(env) + [{"name": k, "value": v} for k, v in NODE_HEALTH_ENV.items()]
    head = _pod_template(
        labels={**base, "app.kubernetes.io/component": "ray-head"},
        container="ray-head",
        cpu="2",
        memory="8Gi",
        shm="2Gi",
        gpus=0,
        head=True,
        **{**common, "env": head_env},
    )
    workers = [
        {
            "groupName": p.name,
            "replicas": p.min_pods,
            "minReplicas": p.min_pods,
            "maxReplicas": p.max_pods,
            "rayStartParams": {},
            "template": _pod_template(
                labels={**base, "app.kubernetes.io/component": f"ray-worker-{p.name}"},
                container="ray-worker",
                cpu=p.cpu,
                memory=p.memory,
                shm=p.shm,
                gpus=p.gpus,
                head=False,
                **common,
            ),
        }
        for p in plans
    ]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(base)},
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},
            "excludeHeadPodFromServeSvc": True,
            "serveConfigV2": dump_yaml(render_serve_config(fleet)),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 300},
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": head,
                },
                "workerGroupSpecs": workers,
                **gcs_fault_tolerance_options(fleet),
            },
        },
    }


def gcs_fault_tolerance_options(fleet: FleetConfig) -> dict[str, Any]:
    """KubeRay's ``gcsFaultToleranceOptions`` from ``ray.gcs_fault_tolerance`` (empty without one).

    With them the head keeps the GCS state in Redis, so a restarted head pod reloads the cluster and the
    worker pods (engines, and the router when it runs on a worker) keep serving through the restart.
    """
    ft = fleet.ray.gcs_fault_tolerance
    if ft is None:
        return {}
    opts: dict[str, Any] = {"redisAddress": ft.redis_address}
    if ft.external_storage_namespace:
        opts["externalStorageNamespace"] = ft.external_storage_namespace
    if ft.redis_password_secret:
        name, key = ft.redis_password_secret.split("/", 1)
        opts["redisPassword"] = {"valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
    return {"gcsFaultToleranceOptions": opts}


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as literal blocks and indents lists under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(obj: Any) -> str:
    """Dump to block-style YAML, keys in insertion order, multi-line strings as ``|`` blocks.

    Args:
        obj: A JSON-like object (or a list of documents: use ``dump_yaml_docs``).

    Returns:
        The YAML text.
    """
    return yaml.dump(
        obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True
    )


def render_text(fleet: FleetConfig, fmt: str, **opts: Any) -> str:
    """Render ``fleet`` in ``fmt`` (``serve`` or ``rayservice``) as YAML text.

    Args:
        fleet: The validated fleet config.
        fmt: Output format.
        **opts: Keyword options of ``render_rayservice``.

    Raises:
        ValueError: Unknown format.
    """
    if fmt == "serve":
        return dump_yaml(render_serve_config(fleet))
    if fmt == "rayservice":
        return dump_yaml(render_rayservice(fleet, **opts))
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def load_for_render(config_path: str) -> FleetConfig:
    """Load a fleet file (or a profile name) for rendering: fully validated, except that local model
    directories need not exist here (they must exist where the config runs: a pod, another host).

    Raises:
        ConfigError: Invalid config (a ValueError).
        OSError: Unreadable file.
    """
    from serve.config import PROFILES_DIR, ConfigError, FleetConfig, list_profiles

    if not os.path.exists(config_path) and config_path in list_profiles():
        config_path = str(PROFILES_DIR / f"{config_path}.yaml")  # a profile name: `--config demo`
    with open(config_path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}: a fleet config must be a mapping")
    return FleetConfig.from_dict(data, source=config_path, check_paths=False)


def render_main(config_path: str, fmt: str, out: TextIO = sys.stdout, **opts: Any) -> int:
    """CLI body of ``qwen-serve render``: load, validate, render, write.

    Args:
        config_path: Fleet YAML file.
        fmt: ``serve`` or ``rayservice``.
        out: Where the YAML goes.
        **opts: Keyword options of ``render_rayservice`` (ignored for ``serve``); None values are dropped.

    Returns:
        0 on success, 2 on a config or usage error (the message goes to stderr).
    """
    try:
        # Validation may import vLLM (engine keys), whose logger writes to stdout: keep `out` pure YAML.
        with contextlib.redirect_stdout(sys.stderr):
            fleet = load_for_render(config_path)
        kwargs = {k: v for k, v in opts.items() if v is not None} if fmt == "rayservice" else {}
        out.write(render_text(fleet, fmt, **kwargs))
    except (ValueError, OSError, yaml.YAMLError) as exc:  # ConfigError is a ValueError
        sys.stderr.write(f"qwen-serve render: {exc}\n")
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m serve.render --config FILE --format serve|rayservice`` (same as ``qwen-serve render``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m serve.render", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="fleet YAML file")
    parser.add_argument("--format", choices=FORMATS, default="serve")
    parser.add_argument("--name", default=None, help="RayService name")
    parser.add_argument("--namespace", default=None)
    parser.add_argument("--image", default=None)
    parser.add_argument("--api-keys-secret", default=None)
    parser.add_argument("--hf-token-secret", default=None)
    parser.add_argument("--model-cache-claim", default=None)
    parser.add_argument("--engine-secret-secret", default=None)
    args = parser.parse_args(argv)
    return render_main(
        args.config,
        args.format,
        name=args.name,
        namespace=args.namespace,
        image=args.image,
        api_keys_secret=args.api_keys_secret,
        hf_token_secret=args.hf_token_secret,
        model_cache_claim=args.model_cache_claim,
        engine_secret_secret=args.engine_secret_secret,
    )


if __name__ == "__main__":
    raise SystemExit(main())
