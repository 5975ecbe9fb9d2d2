"""Fleet entry -> ``LLMConfig`` -> one Ray Serve LLMServer deployment per Qwen variant.

This is the only module that knows ``ray.serve.llm``. Each deployment hosts one real vLLM engine through Ray
Serve LLM's :class:`~ray.serve.llm.LLMServer` (engine start, placement, LoRA, health checks and replica
restarts all stay Ray's). On top of it, :class:`QwenLLMServer` adds one thing: the replica serves vLLM's own
OpenAI ASGI app (the same app Ray Serve LLM uses for its single-model "direct streaming" mode) on a private
port of its node, and registers that address in Ray's internal KV under its deployment name.

Why: the router relays the engine's SSE bytes over one keep-alive HTTP connection instead of moving every
token chunk through a Ray actor call. On this machine the per-chunk handle hop is what costs Ray Serve LLM's
multi-model path 15 % of raw vLLM's throughput (measured with vLLM's serving benchmark on a tiny Qwen3); the byte relay keeps parity while keeping
Ray Serve for placement, scaling and recovery. Several models and one ingress, unlike direct streaming.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ray.serve.deployment import Application

    from serve.config import DeploymentSpec, FleetConfig

logger = logging.getLogger(__name__)

#: Import path of the engine deployments' autoscaling policy (Serve imports and pickles it).
POLICY_IMPORT_PATH = "serve.autoscale.policy:QwenAutoscalingPolicy"
#: Seconds between a replica's load reports to Serve's controller.
METRIC_PUSH_INTERVAL_S = 1.0
#: Seconds Serve waits beyond a deployment's drain_timeout_s before it kills a replica being removed.
DRAIN_MARGIN_S = 10.0
#: How often Serve's controller health-checks an engine replica. A replica whose node is lost is found by its
#: next check (the call fails within a second or two), so this bounds how long Serve waits before it starts a
#: replacement: 3.4-3.9 s after a node's SIGKILL on the multi-node bench, 7.7 s with Serve's default of 10 s.
#: The check is cheap (vLLM's engine-error flag, the frontends' liveness).
ENGINE_HEALTH_CHECK_PERIOD_S = 2.0
#: How long a check may take before it counts as failed (3 in a row mark the replica unhealthy): an engine
#: busy with a long prefill on shared cores can be slow to answer, and a hung one is still replaced.
ENGINE_HEALTH_CHECK_TIMEOUT_S = 30.0

# Engine keys that only make sense on GPUs; dropped for CPU deployments.
_GPU_ONLY_KEYS = ("gpu_memory_utilization", "enable_expert_parallel", "data_parallel_size")


def _llm_server_cls() -> type:
    """Import :class:`serve.engine_server.QwenLLMServer` lazily (Ray Serve LLM pulls in vLLM)."""
    from serve.engine_server import QwenLLMServer

    return QwenLLMServer


def build_llm_config(spec: DeploymentSpec, fleet: FleetConfig | None = None) -> Any:
    """Translate one fleet deployment into Ray Serve LLM's ``LLMConfig``.

    Args:
        spec: The fleet entry.
        fleet: The whole fleet (for runtime environment variables).

    Returns:
        A ``ray.serve.llm.LLMConfig``.
    """
    from ray.serve.llm import LLMConfig

    engine = dict(spec.engine_kwargs())
    deployment: dict[str, Any] = {
        "max_ongoing_requests": spec.effective_max_ongoing_requests,
        "health_check_period_s": ENGINE_HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": ENGINE_HEALTH_CHECK_TIMEOUT_S,
        # A replica chosen for removal withdraws from the routers and finishes its in-flight requests within
        # drain_timeout_s (QwenLLMServer.__del__); Serve kills it only after this.
        "graceful_shutdown_timeout_s": spec.drain_timeout_s + DRAIN_MARGIN_S,
        "autoscaling_config": autoscaling_config(spec),
    }
    kwargs: dict[str, Any] = {}
    env = dict(fleet.ray.env) if fleet is not None else {}
    # Replicas push their load to Serve's controller every second (Serve's default is 10 s).
    env.setdefault("RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S", str(METRIC_PUSH_INTERVAL_S))
    # CPU engines, shared GPUs and custom resources (node pools) get explicit bundles (serve/cluster.py).
    from serve.cluster import engine_bundles

    bundles = engine_bundles(spec)
    if bundles is not None:
        kwargs["placement_group_config"] = {"bundles": bundles}
    if spec.accelerator.type == "cpu":
        for key in _GPU_ONLY_KEYS:
            engine.pop(key, None)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    elif spec.accelerator.gpu_type:
        kwargs["accelerator_type"] = _ray_accelerator_type(spec.accelerator.gpu_type)
    if spec.accelerator.type == "gpu" and spec.accelerator.gpu_fraction is not None:
        # Several replicas share one GPU: the replica's bundle and vLLM's Ray worker reserve the fraction
        # (vLLM counts any bundle with a GPU share as one device).
        env.setdefault("VLLM_RAY_PER_WORKER_GPUS", str(spec.accelerator.gpu_fraction))
    if spec.engine_frontends:
        # Each frontend process gets a logical CPU in the replica's bundle (Ray Serve LLM merges the replica
        # actor's resources into the engine's first bundle), so placement counts them.
        deployment["ray_actor_options"] = {"num_cpus": 1 + spec.engine_frontends}
        if spec.capabilities.vision:
            engine["mm_processor_cache_gb"] = 0  # mirrored per engine client: off with several clients
    if spec.lora is not None:
        from serve.lora import lora_modules

        engine.setdefault("enable_lora", True)
        engine.setdefault("max_lora_rank", spec.lora.max_lora_rank)
        engine.setdefault("max_loras", spec.lora.max_loras)
        # Static adapters, served as `<deployment>:<adapter>` by the replica's own vLLM app (serve/lora.py).
        engine.setdefault("lora_modules", lora_modules(spec.name, spec.lora.adapters))
        if spec.lora.runtime:
            # vLLM serves /v1/load_lora_adapter only with this set (serve/router/adapters.py calls it).
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    # Every replica process keeps Serve's log handlers when vLLM or uvicorn reconfigure logging; without it
    # a restarted Serve controller kills healthy replicas (serve/replica_logging.py).
    from serve.replica_logging import hook_env

    kwargs["runtime_env"] = {"env_vars": {**env, **hook_env()}}
    # A model that is a local directory needs no per-node download task before the engine starts: a replacement
    # replica skips a worker process start on the node it lands on (serve/engine_init.py).
    from serve.engine_init import CALLBACK_IMPORT_PATH

    kwargs["callback_config"] = {"callback_class": CALLBACK_IMPORT_PATH}
    return LLMConfig(
        model_loading_config={"model_id": spec.name, "model_source": spec.model_source},
        engine_kwargs=engine,
        deployment_config=deployment,
        # Tokens go straight from vLLM's HTTP app to the router: no re-batching every 50 ms.
        experimental_configs={"stream_batching_interval_ms": 0},
        log_engine_metrics=True,
        **kwargs,
    )


def autoscaling_config(spec: DeploymentSpec) -> dict[str, Any]:
    """Ray Serve ``autoscaling_config`` of a deployment: bounds, delays and the engine-load policy.

    Fixed replica counts are ``min = max``. Autoscaled deployments use
    :class:`serve.autoscale.policy.QwenAutoscalingPolicy` on the signal the fleet names.
    """
    auto = spec.autoscaling
    if auto is None:
        return {"min_replicas": spec.replicas, "max_replicas": spec.replicas}
    config: dict[str, Any] = {
        "min_replicas": auto.min_replicas,
        "max_replicas": auto.max_replicas,
        "target_ongoing_requests": auto.effective_target if auto.signal == "ongoing" else auto.target_ongoing_requests,
        "upscale_delay_s": auto.upscale_delay_s,
        "downscale_delay_s": auto.downscale_delay_s,
        "look_back_period_s": auto.look_back_period_s,
        # How often a handle records its queue (the router's wake calls), within the look-back window.
        "metrics_interval_s": min(METRIC_PUSH_INTERVAL_S, auto.look_back_period_s / 2),
        "policy": {
            "policy_function": POLICY_IMPORT_PATH,
            "policy_kwargs": {"deployment": spec.name, "signal": auto.signal, "target": auto.effective_target,
                              "replica_capacity": spec.effective_max_ongoing_requests},
        },
    }
    if auto.initial_replicas is not None:
        config["initial_replicas"] = auto.initial_replicas
    if auto.downscale_to_zero_delay_s is not None:
        config["downscale_to_zero_delay_s"] = auto.downscale_to_zero_delay_s
    return config


def _ray_accelerator_type(gpu_type: str) -> str:
    # Ray's accelerator names: H100, A100-80G, A100-40G, L4, A10G, T4, L40S; H200 has none of its own in
    # some Ray releases, so it is left to the resources the cluster advertises.
    mapping = {"A100-80GB": "A100-80G", "A100-40GB": "A100-40G"}
    return mapping.get(gpu_type, gpu_type)


def build_engine_deployment(spec: DeploymentSpec, fleet: FleetConfig | None = None) -> Application:
    """Build the Ray Serve application node of one engine deployment.

    Args:
        spec: The fleet entry.
        fleet: The whole fleet.

    Returns:
        A bound deployment named ``engine-<name>``.
    """
    from ray.serve.llm import build_llm_deployment

    llm_config = build_llm_config(spec, fleet)
    return build_llm_deployment(
        llm_config,
        name_prefix="engine-",
        bind_kwargs={"deployment_name": spec.name, "engine_frontends": spec.engine_frontends,
                     "drain_timeout_s": spec.drain_timeout_s,
                     "engine_auth": fleet.security.engine_auth if fleet is not None else True},
        deployment_cls=_llm_server_cls(),
    )


def engine_deployment_name(name: str) -> str:
    """Ray Serve deployment name of the engine deployment serving model ``name``."""
    return "engine-" + name.replace("/", "--").replace(".", "_")
