"""The autoscaling test fleet: one tiny Qwen3 deployment that scales 0..2 on in-flight requests.

Small on purpose (at most two engines): it starts at zero replicas, so the tests see a scale from zero, an
upscale under a load step and the downscales, with short delays.
``python -m tests.autoscale.fleet OUT.yaml`` writes it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

NAME = "elastic"
API_KEY = "autoscale-key-1"
#: In-flight requests per replica the policy aims for: a load step of 16 streams asks for two replicas.
TARGET = 4
UPSCALE_DELAY_S = 2.0
DOWNSCALE_DELAY_S = 15.0
#: Long enough that the tests finish before the deployment goes back to zero.
TO_ZERO_DELAY_S = 600.0


def autoscale_fleet(min_replicas: int = 0, max_replicas: int = 2, initial: int | None = 0,
                    to_zero_delay_s: float = TO_ZERO_DELAY_S) -> dict[str, Any]:
    """The fleet as a dict (a tiny qwen3 deployment under ``autoscaling``; API keys required)."""
    autoscaling: dict[str, Any] = {
        "min_replicas": min_replicas, "max_replicas": max_replicas, "signal": "ongoing", "target": TARGET,
        "upscale_delay_s": UPSCALE_DELAY_S, "downscale_delay_s": DOWNSCALE_DELAY_S,
        "downscale_to_zero_delay_s": to_zero_delay_s, "look_back_period_s": 4,
    }
    if initial is not None:
        autoscaling["initial_replicas"] = initial
    return {
        "name": "autoscale",
        "host": "127.0.0.1",
        "ray": {"num_cpus": 8, "env": {"VLLM_CPU_KVCACHE_SPACE": "1"}},
        "deployments": [{
            "name": NAME, "tiny": "qwen3",
            "model_path": "${QWEN_SERVE_MODELS:-~/.cache/qwen-serve/tiny}/qwen3-general",
            "accelerator": {"type": "cpu"}, "max_ongoing_requests": 32, "drain_timeout_s": 60,
            "engine": {"max_model_len": 1024, "enforce_eager": True, "dtype": "bfloat16"},
            "autoscaling": autoscaling,
        }],
        "router": {"default_task": "general", "cold_start": {"max_held_requests": 16, "keepalive_s": 1.0,
                                                              "retry_after_s": 5}},
        "security": {"require_api_key": True, "api_keys_env": "QWEN_SERVE_API_KEYS"},
    }


def write(path: str | Path, **kwargs: Any) -> Path:
    """Write the fleet YAML to ``path``."""
    p = Path(path)
    p.write_text(yaml.safe_dump(autoscale_fleet(**kwargs), sort_keys=False))
    return p


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else "/tmp/qwen-serve-autoscale-fleet.yaml"))  # noqa: T201
