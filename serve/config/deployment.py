"""One deployment of the fleet: a Qwen variant (or local model) on CPU or GPUs, with engine settings."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from serve.catalog import Capabilities, UnknownVariantError, Variant, load_catalog
from serve.catalog.models import POOLING_RUNNERS, QuantMethod, Runner
from serve.config.engine_keys import GPU_ONLY_KEYS, PARALLEL_KEYS, allowed_engine_keys
from serve.config.paths import expand_path, looks_local
from serve.config.specs import (
    NAME_PATTERN,
    Accelerator,
    Autoscaling,
    LeastLoadedRouting,
    LoraSpec,
    ReplicaRouting,
    StrictModel,
)
from serve.demokit import TINY, TinyArch

logger = logging.getLogger(__name__)

#: Engine kwargs of a model given only by path whose ``runner`` says it is an embedding or score model.
_POOLING_ENGINE: dict[str, dict[str, Any]] = {"embed": {"runner": "pooling", "convert": "embed"},
                                              "score": {"runner": "pooling"}}
DEFAULT_MAX_NUM_SEQS = {"gpu": 256, "cpu": 64}
_BF16_NAMES = {"bfloat16", "bf16"}


class DeploymentSpec(StrictModel):
    """One served model: a catalog variant or a local/hub model, its hardware and engine settings.

    Attributes:
        name: Served model id (what clients put in ``model``).
        variant: Catalog variant name or hub id (normalised to the catalog name).
        model_path: Local directory or hub id; ``${VAR}``, ``${VAR:-default}`` and ``~`` are expanded.
            Defaults to the variant's (or its quantized checkpoint's) hub id.
        tiny: Build a tiny random-weight model of this architecture at ``model_path`` when missing (demo/tests).
        preset: A named hardware layout of the variant (e.g. ``h200x8``); fills accelerator when not given.
        quantization: Use the variant's quantized checkpoint (awq, gptq-int4, gptq-int8, fp8).
        accelerator: CPU or GPU and how many per replica.
        replicas: Fixed replica count (exclusive with ``autoscaling``).
        autoscaling: Ray Serve autoscaling on the engines' load (bounds, signal, target, delays).
        drain_timeout_s: A replica being removed stops getting new requests, then has this long to finish
            its in-flight ones.
        max_ongoing_requests: Per-replica admission limit (None: the engine's max_num_seqs).
        max_queued_requests: Per-replica queue limit (None: twice the ongoing limit).
        engine: Engine kwargs merged over the variant's preset (vLLM's names; unknown keys are errors).
        lora: LoRA adapters served beside this model.
        replica_routing: How the router picks among this deployment's replicas.
        engine_frontends: vLLM OpenAI-server processes per replica beside the replica itself (``vllm serve
            --api-server-count`` for one engine; see ``serve.frontends``). 0 serves the engine's HTTP app inside
            the Ray replica process; N >= 1 moves it into N processes of their own, the router spreads streams
            over them. Each adds one logical CPU to the replica's Ray bundle. Use it where one frontend core
            limits throughput (hundreds of concurrent streams per engine).
        runner: What the model serves: ``generate`` (chat and completions), ``embed`` (embeddings, and scores
            by cosine) or ``score`` (a reranker or cross-encoder: score, rerank, classify). None: the variant's,
            or the tiny architecture's, else ``generate``. The router sends each endpoint only to deployments
            whose runner serves it.
        capabilities_override: Replace the inferred capabilities (YAML key ``capabilities``).
    """

    name: str = Field(pattern=NAME_PATTERN)
    variant: str | None = None
    model_path: str | None = None
    tiny: TinyArch | None = None
    preset: str | None = None
    quantization: QuantMethod | None = None
    accelerator: Accelerator = Field(default_factory=Accelerator)
    replicas: int = Field(default=1, ge=1)
    autoscaling: Autoscaling | None = None
    drain_timeout_s: float = Field(default=60.0, ge=0)
    max_ongoing_requests: int | None = Field(default=None, ge=1)
    max_queued_requests: int | None = Field(default=None, ge=0)
    engine: dict[str, Any] = Field(default_factory=dict)
    lora: LoraSpec | None = None
    replica_routing: ReplicaRouting = Field(default_factory=LeastLoadedRouting)
    engine_frontends: int = Field(default=0, ge=0, le=32)
    runner: Runner | None = None
    capabilities_override: Capabilities | None = Field(default=None, alias="capabilities")

    model_config = {**StrictModel.model_config, "populate_by_name": True}

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return load_catalog().get(value).name
        except UnknownVariantError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _accelerator_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset") or "accelerator" in data:
            return data
        try:
            preset = load_catalog().get(str(data.get("variant"))).preset(str(data["preset"]))
        except KeyError:
            return data  # reported by the after-validator with a proper message
        accelerator = {"type": "gpu", "count": preset.gpu_count, "gpu_type": preset.gpu_type}
        return {**data, "accelerator": accelerator}

    @model_validator(mode="after")
    def _validate(self, info: ValidationInfo) -> DeploymentSpec:
        # context={"check_paths": False} skips filesystem checks, e.g. when a Ray replica on another node
        # re-validates a config whose local paths exist only where the engines run.
        context = info.context or {}
        self._check_source(check_paths=bool(context.get("check_paths", True)))
        self._check_runner()
        self._check_variant_options()
        self._check_engine_keys(check_keys=bool(context.get("check_engine_keys", True)))
        self._check_hardware()
        self._check_context()
        self._check_frontends()
        return self

    # ------------------------------------------------------------------ validation steps

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"deployment {self.name!r}: {problem}")

    def _check_source(self, check_paths: bool = True) -> None:
        if self.variant is None and self.model_path is None:
            raise self._fail("set `variant` (a catalog name) or `model_path` (a local dir or hub id)")
        if self.tiny and self.model_path is None:
            raise self._fail("`tiny` needs a `model_path` to build the tiny model in")
        if self.replicas != 1 and self.autoscaling is not None:
            raise self._fail(f"set either replicas={self.replicas} or autoscaling, not both")
        if self.model_path is not None:
            try:
                path = expand_path(self.model_path)
            except ValueError as exc:
                raise self._fail(f"model_path: {exc}") from None
            if check_paths and not self.tiny and looks_local(path) and not Path(path).is_dir():
                raise self._fail(f"model_path {path} does not exist (download the model there, or use a hub id)")

    def _check_runner(self) -> None:
        variant = self.resolved_variant()
        kit = TINY.get(self.tiny or "")
        implied = variant.runner if variant is not None else (kit.runner if kit and kit.pooling_variant else None)
        if self.runner is not None and implied is not None and self.runner != implied:
            source = f"variant {variant.name}" if variant is not None else f"tiny: {self.tiny}"
            raise self._fail(f"runner {self.runner!r} contradicts {source}, which is a {implied!r} model")
        if self.resolved_runner in POOLING_RUNNERS and self.lora is not None:
            raise self._fail(f"LoRA adapters need a generate model; this is a {self.resolved_runner!r} model")

    def _check_variant_options(self) -> None:
        for option in ("preset", "quantization"):
            if getattr(self, option) and self.variant is None:
                raise self._fail(f"`{option}` needs a catalog `variant`")
        variant = self.resolved_variant()
        if variant is None:
            return
        try:
            preset = variant.preset(self.preset) if self.preset else None
            method = self.quantization or (preset.quantization if preset else None)
            if method:
                variant.quantization(method)
        except KeyError as exc:
            raise self._fail(str(exc.args[0])) from None

    def _check_engine_keys(self, check_keys: bool = True) -> None:
        # Checking key names imports vLLM (seconds); dry runs from the config (route --local) skip it.
        allowed = allowed_engine_keys() if check_keys else None
        if allowed is not None:
            unknown = sorted(set(self.engine) - allowed)
            if unknown:
                raise self._fail(
                    f"unknown engine keys {unknown}; allowed (vLLM engine/frontend args): {', '.join(sorted(allowed))}"
                )
        if self.accelerator.type == "cpu":
            gpu_keys = sorted(set(self.engine) & GPU_ONLY_KEYS)
            if gpu_keys:
                raise self._fail(f"engine settings {gpu_keys} need GPUs but accelerator.type is cpu")
            if self.preset:
                raise self._fail(f"preset {self.preset!r} is a GPU layout but accelerator.type is cpu")
            if self.quantization:
                raise self._fail(f"quantization {self.quantization!r} needs a GPU but accelerator.type is cpu")

    def _check_hardware(self) -> None:
        kwargs = self.engine_kwargs()
        sizes = {k: int(kwargs.get(k, 1)) for k in PARALLEL_KEYS}
        used = math.prod(sizes.values())
        if self.accelerator.type == "gpu" and used > self.accelerator.count:
            parts = " x ".join(f"{k}={v}" for k, v in sizes.items() if v > 1)
            raise self._fail(f"{parts} needs {used} GPUs but accelerator.count={self.accelerator.count}")
        variant = self.resolved_variant()
        tp = sizes["tensor_parallel_size"]
        if variant is not None and variant.architecture.num_attention_heads % tp:
            heads = variant.architecture.num_attention_heads
            raise self._fail(f"tensor_parallel_size={tp} does not divide the {heads} attention heads")
        fraction = self.accelerator.gpu_fraction
        util = kwargs.get("gpu_memory_utilization")
        if fraction is not None and (util is None or float(util) > fraction):
            raise self._fail(f"accelerator.gpu_fraction={fraction} needs engine gpu_memory_utilization <= {fraction} "
                             f"(got {util}) so deployments sharing the GPU fit")
        self._check_gpu_type(kwargs)

    def _check_gpu_type(self, kwargs: dict[str, Any]) -> None:
        if self.accelerator.gpu_type is None:
            return
        gpu = load_catalog().gpu(self.accelerator.gpu_type)
        quant = self.resolved_quantization()
        if quant is not None and gpu.compute_capability < quant.min_compute_capability:
            raise self._fail(
                f"{quant.method} needs compute capability >= {quant.min_compute_capability} but {gpu.name} has "
                f"{gpu.compute_capability}; pick another gpu_type or quantization"
            )
        if str(kwargs.get("dtype", "")).lower() in _BF16_NAMES and not gpu.supports_bf16:
            raise self._fail(f"dtype bfloat16 needs compute capability >= 8.0 but {gpu.name} has "
                             f"{gpu.compute_capability}; use dtype: float16")
        from serve.catalog.sizing import check_fit

        variant = self.resolved_variant()
        if variant is not None:
            problem = check_fit(variant, gpu, kwargs, self.accelerator.count, quant)
            if problem:
                raise self._fail(problem)

    def _check_context(self) -> None:
        variant = self.resolved_variant()
        max_len = self.engine_kwargs().get("max_model_len")
        if variant is not None and max_len is not None and int(max_len) > variant.max_context_length:
            raise self._fail(
                f"max_model_len={max_len} is longer than {variant.name}'s maximum context "
                f"({variant.max_context_length} tokens)"
            )

    def _check_frontends(self) -> None:
        if not self.engine_frontends:
            return
        # vLLM mirrors the multimodal processor cache per engine client; with several clients it must be off.
        cache = self.engine.get("mm_processor_cache_gb")
        if self.capabilities.vision and cache not in (None, 0, 0.0):
            raise self._fail(f"engine_frontends={self.engine_frontends} needs engine mm_processor_cache_gb: 0 for a "
                             f"multimodal model (got {cache}); every frontend is an engine client of its own")
        dp = int(self.engine_kwargs().get("data_parallel_size", 1))
        if dp > 1:
            raise self._fail(f"engine_frontends needs data_parallel_size 1 (got {dp})")

    # ------------------------------------------------------------------ derived values

    def resolved_variant(self) -> Variant | None:
        """Return the catalog variant, or None for a model given only by path."""
        return load_catalog().get(self.variant) if self.variant else None

    def resolved_quantization(self) -> Any:
        """Return the variant's :class:`~serve.catalog.Quantization` in use (explicit or from the preset)."""
        variant = self.resolved_variant()
        if variant is None:
            return None
        method = self.quantization
        if method is None and self.preset:
            method = variant.preset(self.preset).quantization
        return variant.quantization(method) if method else None

    def engine_kwargs(self) -> dict[str, Any]:
        """Engine kwargs for this deployment: preset, then hardware preset, quantization, overrides.

        On CPU the GPU-only keys of the preset are dropped and parallel sizes are 1.

        Returns:
            Ray Serve LLM ``engine_kwargs`` (vLLM engine and frontend args).
        """
        variant = self.resolved_variant()
        if variant is not None:
            kwargs = variant.engine.to_engine_kwargs()
        elif self.tiny and (pooling := TINY[self.tiny].pooling_variant):
            preset = load_catalog().get(pooling).engine.to_engine_kwargs()
            kwargs = {k: v for k, v in preset.items() if k != "max_model_len"}
        else:
            kwargs = dict(TINY[self.tiny].engine) if self.tiny else {}
            if self.runner in POOLING_RUNNERS:
                kwargs = dict(_POOLING_ENGINE[self.runner])
        if variant is not None and self.preset:
            kwargs.update(variant.preset(self.preset).engine)
        quant = self.resolved_quantization()
        if quant is not None:
            cc = load_catalog().gpu(self.accelerator.gpu_type).compute_capability if self.accelerator.gpu_type else None
            kwargs["quantization"] = quant.engine_value(cc)
        kwargs.update(self.engine)
        if self.accelerator.type == "cpu":
            kwargs = {k: v for k, v in kwargs.items() if k not in GPU_ONLY_KEYS}
        return kwargs

    @property
    def capabilities(self) -> Capabilities:
        """The override, else the variant's capabilities, else those inferred from ``tiny``."""
        if self.capabilities_override is not None:
            return self.capabilities_override
        variant = self.resolved_variant()
        if variant is not None:
            return variant.capabilities
        kit = TINY.get(self.tiny or "")
        return Capabilities(tools=kit.tools, thinking=kit.thinking, vision=kit.vision) if kit else Capabilities()

    @property
    def resolved_runner(self) -> Runner:
        """What the model serves: ``runner``, else the variant's, else the tiny architecture's, else generate."""
        if self.runner is not None:
            return self.runner
        variant = self.resolved_variant()
        if variant is not None:
            return variant.runner
        return TINY[self.tiny].runner if self.tiny else "generate"  # type: ignore[return-value]

    @property
    def tasks(self) -> list[str]:
        """Tasks this deployment suits (variant's, else inferred from ``tiny``, else general; none for an
        embedding or score model)."""
        if self.resolved_runner in POOLING_RUNNERS:
            return []
        variant = self.resolved_variant()
        if variant is not None:
            return list(variant.tasks)
        return list(TINY[self.tiny].tasks) if self.tiny else ["general"]

    @property
    def context_length(self) -> int:
        """The engine's ``max_model_len`` (or the variant's native context; 2048 if unknown)."""
        max_len = self.engine_kwargs().get("max_model_len")
        if max_len is not None:
            return int(max_len)
        variant = self.resolved_variant()
        return variant.context_length if variant is not None else 2048

    @property
    def model_source(self) -> str:
        """What vLLM loads: the expanded ``model_path``, else the quantized or plain hub id."""
        if self.model_path is not None:
            return expand_path(self.model_path)
        quant = self.resolved_quantization()
        if quant is not None:
            return str(quant.hub_id)
        variant = self.resolved_variant()
        assert variant is not None  # guaranteed by validation
        return variant.hub_id

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica uses (0 on CPU)."""
        return self.accelerator.count if self.accelerator.type == "gpu" else 0

    @property
    def effective_max_ongoing_requests(self) -> int:
        """``max_ongoing_requests``, else the engine's ``max_num_seqs`` (vLLM default 256 on GPU, 64 on CPU)."""
        if self.max_ongoing_requests is not None:
            return self.max_ongoing_requests
        seqs = self.engine_kwargs().get("max_num_seqs")
        return int(seqs) if seqs is not None else DEFAULT_MAX_NUM_SEQS[self.accelerator.type]

    @property
    def effective_max_queued_requests(self) -> int:
        """``max_queued_requests``, else twice the effective ongoing limit."""
        if self.max_queued_requests is not None:
            return self.max_queued_requests
        return 2 * self.effective_max_ongoing_requests
