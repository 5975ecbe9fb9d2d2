"""The multi-node fleet: one tiny Qwen3 deployment with two replicas pinned to the engine pool of worker
nodes, the router on the head. ``extra`` is the deployment a rolling update adds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Custom resource every engine-pool worker node advertises once: at most one engine replica per node.
POOL = "engine-pool"
MODEL = "qwen3-pool"
EXTRA = "qwen2-extra"
MODELS_DIR = "${QWEN_SERVE_MODELS:-~/.cache/qwen-serve/tiny}"
#: Engine process environment: no CPU pinning, one torch (OpenMP) thread.
ENGINE_THREADS = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
_ENGINE = {"max_model_len": 1024, "enforce_eager": True, "dtype": "bfloat16"}


def _deployment(name: str, arch: str, replicas: int) -> dict[str, Any]:
    return {"name": name, "tiny": arch, "model_path": f"{MODELS_DIR}/mn-{arch}",
            "accelerator": {"type": "cpu", "resources": {POOL: 1}}, "replicas": replicas,
            "max_ongoing_requests": 32, "engine": dict(_ENGINE)}


def multinode_fleet(port: int, *, extra: bool = False) -> dict[str, Any]:
    """The fleet; ``extra`` adds a second deployment and an alias for it (the rolling update's change)."""
    deployments = [_deployment(MODEL, "qwen3", 2)]
    aliases: dict[str, str | None] = {"auto": None}
    if extra:
        deployments.append(_deployment(EXTRA, "qwen2", 1))
        aliases["qwen-extra"] = EXTRA
    return {
        "name": "multinode",
        "host": "127.0.0.1",
        "port": port,
        # Engines share the host's cores: no OpenMP core binding (vLLM's "auto" pins each engine to cores it
        # picks, the same ones for every engine on one host) and one torch thread each, so two engines run
        # on a 2-core machine without starving each other or the router.
        "ray": {"router_placement": "head", "env": {"VLLM_CPU_KVCACHE_SPACE": "1", **ENGINE_THREADS}},
        "deployments": deployments,
        "router": {"default_task": "general", "aliases": aliases},
    }


def write(path: Path, port: int, *, extra: bool = False) -> Path:
    """Write the fleet YAML to ``path``."""
    path.write_text(yaml.safe_dump(multinode_fleet(port, extra=extra), sort_keys=False))
    return path
