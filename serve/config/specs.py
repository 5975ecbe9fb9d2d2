"""The small building blocks of the fleet config: accelerator, autoscaling, LoRA, router, security, Ray."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from serve.catalog import TASKS, UnknownGpuError, load_catalog

logger = logging.getLogger(__name__)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_NAME_RE = re.compile(NAME_PATTERN)
SAMPLING_KEYS: frozenset[str] = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty"}
)


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Accelerator(StrictModel):
    """Where one replica of a deployment runs.

    Attributes:
        type: ``cpu`` or ``gpu``.
        count: GPUs per replica (TP x PP x DP must not exceed it); CPU bundles on cpu.
        gpu_type: GPU model from the catalog's table (H200, H100, A100-80GB, ...); enables capability checks.
        gpu_fraction: Share of one GPU a replica reserves in Ray when several deployments share a GPU
            (count must be 1; the engine's gpu_memory_utilization must not exceed it).
        resources: Custom Ray resources one replica asks for, e.g. ``{qwen-gpu-pool: 1}``: the replica only
            runs on nodes that advertise them (``ray start --resources``, a KubeRay group's ``resources``
            rayStartParam), which pins a deployment to a node pool on a multi-node cluster.
    """

    type: Literal["cpu", "gpu"] = "cpu"
    count: int = Field(default=1, ge=1)
    gpu_type: str | None = None
    gpu_fraction: float | None = Field(default=None, gt=0, le=1)
    resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        return check_custom_resources(value)

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return load_catalog().gpu(value).name
        except UnknownGpuError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _gpu_type_needs_gpu(self) -> Accelerator:
        if self.type == "cpu" and self.gpu_type is not None:
            raise ValueError(f"gpu_type={self.gpu_type} given but accelerator.type is cpu; set type: gpu")
        if self.gpu_fraction is not None and (self.type == "cpu" or self.count != 1):
            raise ValueError("gpu_fraction needs accelerator.type gpu and count 1")
        return self


#: Signals the autoscaling policy can scale a deployment on (see ``serve.autoscale.policy``).
ScalingSignal = Literal["ongoing", "waiting", "kv_usage"]
#: Per-replica target of each signal when ``autoscaling.target`` is not given.
DEFAULT_SIGNAL_TARGETS: dict[str, float] = {"ongoing": 16.0, "waiting": 2.0, "kv_usage": 0.7}


#: Ray's built-in resource names: placement through them is the accelerator's job, not a custom label's.
_BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
_RESOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")


def check_custom_resources(value: dict[str, float]) -> dict[str, float]:
    """Validate a mapping of custom Ray resource labels to amounts (> 0, not Ray's built-in names).

    Raises:
        ValueError: A built-in or malformed name, or an amount that is not positive.
    """
    for name, amount in value.items():
        if name in _BUILTIN_RESOURCES:
            raise ValueError(f"resource {name!r} is Ray's own; use accelerator.type/count for CPUs and GPUs")
        if not _RESOURCE_RE.match(name):
            raise ValueError(f"resource name {name!r} must match {_RESOURCE_RE.pattern}")
        if not amount > 0:
            raise ValueError(f"resource {name!r}: amount must be > 0, got {amount}")
    return value


class Autoscaling(StrictModel):
    """Ray Serve autoscaling of a deployment, on the load its engine replicas report.

    Each engine replica reports its load to Ray Serve's autoscaler (``record_autoscaling_stats``): the requests
    in flight on its HTTP app (what every router has sent it and not yet seen answered), and its vLLM engine's
    running and waiting requests and KV-cache use. The policy (``serve.autoscale.policy``) turns the chosen
    ``signal`` into a replica count; Ray Serve applies the delays and bounds.

    Attributes:
        min_replicas: Lower bound (0 allows scale to zero: the router holds requests while a replica starts).
        max_replicas: Upper bound, at least ``min_replicas``.
        initial_replicas: Replicas started with the deployment (None: ``min_replicas``).
        signal: What is scaled on, per replica: ``ongoing`` (requests in flight), ``waiting`` (requests
            queued in the engine) or ``kv_usage`` (fraction of the KV cache in use).
        target: Per-replica value of the signal the autoscaler aims for (None: ``target_ongoing_requests``
            for ``ongoing``, 2 waiting requests, 0.7 KV use).
        target_ongoing_requests: The ``ongoing`` target (kept for configs written before ``target``).
        upscale_delay_s: How long the signal must ask for more replicas before they are added.
        downscale_delay_s: How long it must ask for fewer before replicas are removed (not to zero).
        downscale_to_zero_delay_s: Delay of the last step, 1 -> 0 (None: ``downscale_delay_s``).
        look_back_period_s: Window over which the replicas' reports are averaged.
    """

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    initial_replicas: int | None = Field(default=None, ge=0)
    signal: ScalingSignal = "ongoing"
    target: float | None = Field(default=None, gt=0)
    target_ongoing_requests: float = Field(default=DEFAULT_SIGNAL_TARGETS["ongoing"], gt=0)
    upscale_delay_s: float = Field(default=10.0, ge=0)
    downscale_delay_s: float = Field(default=60.0, ge=0)
    downscale_to_zero_delay_s: float | None = Field(default=None, ge=0)
    look_back_period_s: float = Field(default=10.0, gt=1)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas={self.max_replicas} is below min_replicas={self.min_replicas}")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError(f"initial_replicas={self.initial_replicas} is outside min_replicas={self.min_replicas}"
                             f"..max_replicas={self.max_replicas}")
        if self.signal != "ongoing" and "target_ongoing_requests" in self.model_fields_set:
            raise ValueError(f"target_ongoing_requests only applies to signal `ongoing` (signal is `{self.signal}`); "
                             "set `target` instead")
        if self.signal == "kv_usage" and self.target is not None and self.target > 1:
            raise ValueError(f"target={self.target} is a KV-cache fraction for signal `kv_usage`: use 0 < target <= 1")
        return self

    @property
    def effective_target(self) -> float:
        """The per-replica target of ``signal``."""
        if self.target is not None:
            return self.target
        if self.signal == "ongoing":
            return self.target_ongoing_requests
        return DEFAULT_SIGNAL_TARGETS[self.signal]


class LoraSpec(StrictModel):
    """LoRA adapters served beside a base deployment.

    Attributes:
        tiny: Build a tiny random adapter (rank 8) in each missing directory (demo/tests; the base
            deployment must be ``tiny: qwen3`` or another tiny text model). Missing directories are then
            not an error at validation time: ``qwen-serve up`` builds them first.
        adapters: Adapter name -> local directory (holding ``adapter_config.json``).
        max_loras: Adapters resident at once.
        max_lora_rank: Largest adapter rank accepted.
        runtime: Accept adapters loaded and unloaded at run time through the router's admin endpoints
            (``POST /v1/load_lora_adapter``); sets ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` in the engines.
    """

    tiny: bool = False  # declared before ``adapters``: its validator reads it
    adapters: dict[str, str] = Field(default_factory=dict)
    max_loras: int = Field(default=4, ge=1)
    max_lora_rank: int = Field(default=16, ge=1)
    runtime: bool = Field(default=False, description="Accept adapters loaded at run time (admin endpoint).")

    @field_validator("adapters")
    @classmethod
    def _adapters(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        from serve.config.paths import expand_path

        check_paths = bool((info.context or {}).get("check_paths", True)) and not info.data.get("tiny")
        out: dict[str, str] = {}
        for name, path in value.items():
            if not _NAME_RE.match(name) or ":" in name:
                raise ValueError(f"invalid adapter name {name!r}: use letters, digits, '.', '_', '-'")
            expanded = expand_path(path)
            if check_paths and not Path(expanded).is_dir():
                raise ValueError(f"adapter {name!r}: directory {expanded} does not exist")
            out[name] = expanded
        return out


class LeastLoadedRouting(StrictModel):
    """``least_loaded``: power of two choices on the router's in-flight requests (the default)."""

    policy: Literal["least_loaded"] = "least_loaded"


class RoundRobinRouting(StrictModel):
    """``round_robin``: rotate over the healthy replicas."""

    policy: Literal["round_robin"] = "round_robin"


class PrefixAffinityRouting(StrictModel):
    """``prefix_affinity``: shared prompt prefixes and sessions stick to one replica (for vLLM's prefix
    cache), with a load guard.

    Attributes:
        load_guard: Fall back to least-loaded when the preferred replica has more than ``load_guard`` x the
            least busy replica's in-flight requests plus ``slack``.
        slack: In-flight difference always tolerated by the load guard.
        max_keys: Prefixes and sessions remembered per deployment (least recently used are forgotten).
    """

    policy: Literal["prefix_affinity"] = "prefix_affinity"
    load_guard: float = Field(default=2.0, ge=1.0)
    slack: int = Field(default=4, ge=0)
    max_keys: int = Field(default=65536, ge=16)


def _routing_policy(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("policy", "least_loaded"))
    return str(getattr(value, "policy", "least_loaded"))


#: How the router picks a replica of one deployment: one parameter model per policy, chosen by ``policy``
#: (a policy's parameters are refused under another policy). The pickers are in ``serve.router.replicas``.
ReplicaRouting = Annotated[
    Annotated[LeastLoadedRouting, Tag("least_loaded")]
    | Annotated[RoundRobinRouting, Tag("round_robin")]
    | Annotated[PrefixAffinityRouting, Tag("prefix_affinity")],
    Discriminator(_routing_policy),
]


class TaskPolicy(StrictModel):
    """How the router serves one task.

    Attributes:
        candidates: Deployment names to try, in order (spill-over goes down the list).
        system_prompt: Added when the request has no system message.
        sampling: Defaults for unset sampling fields (temperature, top_p, top_k, min_p, penalties).
        enable_thinking: Qwen3 thinking mode default (None: leave the model's default).
    """

    candidates: list[str] = Field(default_factory=list)
    system_prompt: str | None = None
    sampling: dict[str, float | int] = Field(default_factory=dict)
    enable_thinking: bool | None = None

    @field_validator("sampling")
    @classmethod
    def _sampling_keys(cls, value: dict[str, float | int]) -> dict[str, float | int]:
        unknown = sorted(set(value) - SAMPLING_KEYS)
        if unknown:
            raise ValueError(f"unknown sampling keys {unknown}; allowed: {sorted(SAMPLING_KEYS)}")
        return value


class SaturationSpec(StrictModel):
    """When the router treats a deployment as full and spills to the next candidate.

    Attributes:
        max_ongoing_ratio: Fraction of the deployment's effective ``max_ongoing_requests`` (counted from this
            router replica's own in-flight requests).
        queue_threshold: Requests waiting in the engines' own queues (summed over the deployment's live
            replicas, as their heartbeats last reported them, at most a few seconds old) tolerated before
            spilling; catches load sent by other router replicas. None: engine queues are not consulted.
    """

    max_ongoing_ratio: float = Field(default=0.9, gt=0, le=1)
    queue_threshold: int | None = Field(default=None, ge=0)


class ColdStartSpec(StrictModel):
    """Requests for a deployment scaled to zero: held while Ray Serve starts a replica, within bounds.

    Attributes:
        max_held_requests: Requests held per deployment at once; more get 503 with ``Retry-After``.
        max_wait_s: Longest a request is held (also bounded by its own deadline); then 503 with ``Retry-After``.
        keepalive_s: A held streaming request gets an SSE comment this often, so proxies keep it open.
        retry_after_s: ``Retry-After`` of the 503s above.
        spill_to_warm: For a virtual model (task routing), let a warm capable candidate serve instead of waiting
            (the cold one is still woken); explicit models always wait for their own deployment.
    """

    max_held_requests: int = Field(default=64, ge=0)
    max_wait_s: float = Field(default=300.0, gt=0)
    keepalive_s: float = Field(default=5.0, gt=0)
    retry_after_s: float = Field(default=10.0, ge=0)
    spill_to_warm: bool = True


class RouterSpec(StrictModel):
    """The task router's policy.

    Attributes:
        tasks: Task -> policy. Tasks left out get candidates from the deployments' capabilities.
        default_task: Task used when the classifier has no signal.
        aliases: Virtual model names -> task (None: classify the request), or -> a deployment or
            ``deployment:adapter`` (a short name for a model or LoRA adapter).
        saturation: Spill-over thresholds.
        classifier: Free knobs for the classifier.
        mirror_reasoning_content: Also send each chat answer's ``reasoning`` as ``reasoning_content``.
        cold_start: Holding requests for deployments scaled to zero.
    """

    tasks: dict[str, TaskPolicy] = Field(default_factory=dict)
    default_task: str = "general"
    aliases: dict[str, str | None] = Field(default_factory=lambda: dict[str, str | None]({"auto": None}))
    saturation: SaturationSpec = Field(default_factory=SaturationSpec)
    cold_start: ColdStartSpec = Field(default_factory=ColdStartSpec)
    classifier: dict[str, object] = Field(default_factory=dict)
    mirror_reasoning_content: bool = Field(
        default=False, description="Also send each chat answer's `reasoning` as `reasoning_content`, the name "
        "vLLM used before 0.10 and DeepSeek's API uses (for clients that read only that one).")

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for alias in value:
            if not _NAME_RE.match(alias):
                raise ValueError(f"invalid alias name {alias!r}")
        return value


class KeyRateLimit(StrictModel):
    """Rate limits of one API key (None: unlimited).

    Attributes:
        requests_per_minute: Requests per key per minute (a token bucket of this size, refilled continuously).
        tokens_per_minute: Prompt + completion tokens per key per minute. A request is charged an estimate up
            front (prompt from its bytes, completion from ``max_tokens``), settled with its real usage once
            answered (``serve.security.usage``).
    """

    requests_per_minute: int | None = Field(default=None, ge=1, description="Requests per key per minute.")
    tokens_per_minute: int | None = Field(default=None, ge=1,
                                          description="Prompt + completion tokens per key per minute.")


class RateLimitSpec(KeyRateLimit):
    """Per-key rate limits (None: unlimited); keys without an API key are limited per client address.

    Attributes:
        per_key: Key name -> its own limits (a key is named in its source as ``name:secret``; unnamed keys
            are called ``key-<first 8 hex of its SHA-256>``).
        default_completion_tokens: Completion tokens charged when a request sets no ``max_tokens``.
    """

    per_key: dict[str, KeyRateLimit] = Field(default_factory=dict, description="Key name -> its own limits.")
    default_completion_tokens: int = Field(default=256, ge=1,
                                           description="Completion tokens charged when max_tokens is unset.")


class InputLimits(StrictModel):
    """Request limits enforced before anything reaches an engine.

    Attributes:
        max_body_bytes: Largest request body.
        max_messages: Most chat messages.
        max_tokens_cap: Largest ``max_tokens`` accepted.
        max_n: Largest ``n``.
        max_stop_sequences: Most stop strings (4, as the OpenAI API and vLLM's OpenAI server allow).
        request_timeout_s: Whole-request timeout.
        max_request_timeout_s: Cap of the per-request ``x-request-timeout`` header (seconds).
        max_pooling_inputs: Most texts in one embeddings or pooling request, and most documents in one score
            or rerank request (OpenAI's embeddings API takes up to 2048 inputs).
    """

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=512, ge=1)
    max_tokens_cap: int = Field(default=32768, ge=1)
    max_n: int = Field(default=8, ge=1)
    max_stop_sequences: int = Field(default=4, ge=0)
    request_timeout_s: float = Field(default=600.0, gt=0)
    max_request_timeout_s: float = Field(default=600.0, gt=0,
                                         description="Cap of the per-request x-request-timeout header.")
    max_pooling_inputs: int = Field(default=2048, ge=1,
                                    description="Most inputs (embeddings) or documents (score, rerank) per request.")


class SecuritySpec(StrictModel):
    """API keys, rate limits and input limits.

    Attributes:
        api_keys_env: Environment variable holding comma-separated keys (``secret`` or ``name:secret``).
        api_keys_file: File with one key per line (``secret`` or ``name:secret``; ``#`` comments).
        require_api_key: Refuse requests without a valid key.
        metrics_public: Serve ``/metrics`` without a key.
        engine_auth: Engine replicas answer only requests carrying the fleet's engine secret, which only the
            router sends (``serve.security.engine_secret``); off only for debugging an engine directly.
        rate_limit: Per-key rate limits.
        limits: Input limits.
        admin_keys_env: Environment variable holding comma-separated admin keys (``secret`` or
            ``name:secret``), accepted by the admin endpoints (run-time LoRA, drain) from other hosts; the
            admin endpoints always accept localhost. Admin keys are not API keys and vice versa.
        admin_keys_file: File with one admin key per line.
    """

    api_keys_env: str | None = None
    api_keys_file: str | None = None
    admin_keys_env: str | None = Field(default=None, description="Env var with the admin keys (comma-separated).")
    admin_keys_file: str | None = Field(default=None, description="File with one admin key per line.")
    require_api_key: bool = False
    metrics_public: bool = True
    engine_auth: bool = True
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)
    limits: InputLimits = Field(default_factory=InputLimits)

    @model_validator(mode="after")
    def _keys_source(self) -> SecuritySpec:
        if self.require_api_key and not (self.api_keys_env or self.api_keys_file):
            raise ValueError("require_api_key is true but neither api_keys_env nor api_keys_file is set")
        return self


class GcsFaultTolerance(StrictModel):
    """Ray GCS fault tolerance: the head's cluster state kept in an external Redis.

    With it, a restarted GCS (a head pod KubeRay recreates, a ``gcs_server`` a supervisor restarts) reloads
    the cluster's actors, placement groups and internal KV (the engines' endpoint records), and worker nodes
    reconnect instead of exiting: engines and the router keep serving through the restart.

    Attributes:
        redis_address: ``host:port`` of the Redis (``RAY_REDIS_ADDRESS`` / KubeRay ``gcsFaultToleranceOptions``).
        redis_password_secret: ``<secret name>/<key>`` of a Kubernetes secret holding the Redis password.
        external_storage_namespace: Key prefix in Redis, unique per cluster sharing one Redis.
    """

    redis_address: str = Field(pattern=r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")
    redis_password_secret: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]*/[A-Za-z0-9._-]+$")
    external_storage_namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")


class RaySpec(StrictModel):
    """How the stack starts or joins Ray, and where the router runs on a cluster.

    Attributes:
        num_cpus: Logical CPUs for a local ``ray.init`` (more than cores so every deployment schedules).
        env: Runtime environment variables for every replica.
        address: An existing cluster to join (``auto``, ``HOST:PORT`` of its GCS, or ``ray://HOST:PORT``);
            None starts a local head (``qwen-serve up --address`` and ``RAY_ADDRESS`` override it). A joined
            cluster is never stopped by ``qwen-serve down``: only the application is removed.
        direct_ingress: Let the router replica serve HTTP itself on the fleet's port (Ray Serve's direct
            ingress) instead of behind Ray's HTTP proxy: no Ray actor hop per streamed chunk.
        router_replicas: Replicas of the router ingress deployment.
        router_placement: ``any`` (wherever Ray finds a CPU) or ``head`` (the head node, whose address
            clients already know; the router needs no accelerator).
        router_resources: Custom Ray resources the router replica asks for (e.g. a CPU node pool's label).
        gcs_fault_tolerance: External Redis for the GCS (rendered into the RayService; ``up`` on a local
            head sets it up when given).
    """

    num_cpus: int | None = Field(default=None, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    address: str | None = Field(default=None, min_length=1)
    direct_ingress: bool = True
    router_replicas: int = Field(default=1, ge=1)
    router_placement: Literal["any", "head"] = "any"
    router_resources: dict[str, float] = Field(default_factory=dict)
    gcs_fault_tolerance: GcsFaultTolerance | None = None

    @field_validator("router_resources")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        return check_custom_resources(value)


__all__ = [
    "NAME_PATTERN",
    "SAMPLING_KEYS",
    "TASKS",
    "Accelerator",
    "Autoscaling",
    "ColdStartSpec",
    "DEFAULT_SIGNAL_TARGETS",
    "GcsFaultTolerance",
    "InputLimits",
    "KeyRateLimit",
    "LoraSpec",
    "RateLimitSpec",
    "RaySpec",
    "ReplicaRouting",
    "RouterSpec",
    "SaturationSpec",
    "ScalingSignal",
    "SecuritySpec",
    "StrictModel",
    "TaskPolicy",
    "check_custom_resources",
]
