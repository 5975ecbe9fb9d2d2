"""Pydantic models describing the Qwen family: architectures, capabilities, engine presets, GPUs.

The data itself lives in ``variants.yaml`` (package data); ``serve.catalog.catalog`` loads it into these
models. Every model forbids unknown fields so a typo in the catalog file is an error at load time.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

logger = logging.getLogger(__name__)

Family = Literal["qwen2.5", "qwen2.5-coder", "qwen2.5-math", "qwen2.5-vl", "qwen3", "qwen3-moe", "qwen3-embedding",
                 "qwen3-reranker"]
ModelType = Literal["qwen2", "qwen2_5_vl", "qwen3", "qwen3_moe"]
Modality = Literal["text", "image", "video"]
QuantMethod = Literal["awq", "gptq-int4", "gptq-int8", "fp8"]
#: What a model serves: ``generate`` (chat/completions), ``embed`` (embeddings; vLLM also scores pairs by the
#: cosine of their embeddings) or ``score`` (a cross-encoder or reranker: score, rerank, classify).
Runner = Literal["generate", "embed", "score"]
#: The runners of vLLM's pooling models (served by ``/pooling``, ``/v1/embeddings``, ``/score``, ``/rerank``).
POOLING_RUNNERS: frozenset[str] = frozenset({"embed", "score"})

#: The task set the router knows about.
TASKS: tuple[str, ...] = ("code", "math", "vision", "reasoning", "general")

#: Hub-id suffix Qwen uses for each quantized checkpoint.
QUANT_SUFFIX: dict[str, str] = {"awq": "-AWQ", "gptq-int4": "-GPTQ-Int4", "gptq-int8": "-GPTQ-Int8", "fp8": "-FP8"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VisionArchitecture(_Strict):
    """The Qwen2.5-VL vision tower (ViT with window attention and a patch merger).

    Attributes:
        depth: Number of ViT blocks.
        hidden_size: ViT width.
        intermediate_size: ViT SwiGLU MLP width.
        num_heads: ViT attention heads.
        patch_size: Spatial patch size in pixels.
        temporal_patch_size: Frames folded into one patch.
        spatial_merge_size: Patches merged per side before projection into the LM.
        in_channels: Image channels.
        out_hidden_size: Width of the merger output (equals the LM hidden size).
        window_size: Window attention size in pixels.
        fullatt_block_indexes: Blocks that use full attention.
    """

    depth: int = 32
    hidden_size: int = 1280
    intermediate_size: int = 3420
    num_heads: int = 16
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    in_channels: int = 3
    out_hidden_size: int
    window_size: int = 112
    fullatt_block_indexes: list[int] = Field(default_factory=lambda: [7, 15, 23, 31])


class Architecture(_Strict):
    """Architecture numbers as in the model's Hugging Face ``config.json``.

    Attributes:
        model_type: HF model type (qwen2, qwen2_5_vl, qwen3, qwen3_moe).
        num_hidden_layers: Decoder layers.
        hidden_size: Model width.
        intermediate_size: Dense MLP width (unused by all-MoE layers).
        num_attention_heads: Query heads.
        num_key_value_heads: KV heads (GQA).
        head_dim: Per-head dimension.
        vocab_size: Embedding rows (and lm_head rows).
        tie_word_embeddings: Whether lm_head shares the embedding matrix.
        attention_bias: Bias on q/k/v projections (the Qwen2 family).
        qk_norm: RMSNorm on q and k per head (Qwen3).
        num_experts: Routed experts per MoE layer (0 for dense).
        num_experts_per_tok: Experts active per token.
        moe_intermediate_size: Expert MLP width.
        norm_topk_prob: Renormalise the top-k router weights (Qwen3-MoE).
        max_position_embeddings: Positions the config allows.
        rope_theta: RoPE base.
        rms_norm_eps: RMSNorm epsilon.
        vision: Vision tower (Qwen2.5-VL only).
    """

    model_type: ModelType
    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool
    attention_bias: bool = False
    qk_norm: bool = False
    num_experts: int = Field(default=0, ge=0)
    num_experts_per_tok: int = Field(default=0, ge=0)
    moe_intermediate_size: int = Field(default=0, ge=0)
    norm_topk_prob: bool = False
    max_position_embeddings: int = Field(gt=0)
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    vision: VisionArchitecture | None = None

    @model_validator(mode="after")
    def _check(self) -> Architecture:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.model_type == "qwen3_moe":
            if not (self.num_experts and self.num_experts_per_tok and self.moe_intermediate_size):
                raise ValueError("qwen3_moe needs num_experts, num_experts_per_tok and moe_intermediate_size")
            if self.num_experts_per_tok > self.num_experts:
                raise ValueError("num_experts_per_tok cannot exceed num_experts")
        elif self.num_experts:
            raise ValueError(f"{self.model_type} is dense: num_experts must be 0")
        if (self.model_type == "qwen2_5_vl") != (self.vision is not None):
            raise ValueError("a vision tower is required for qwen2_5_vl and only for it")
        return self


class Capabilities(_Strict):
    """What a model can do, as the router sees it.

    Attributes:
        tools: OpenAI tool calling (the chat template emits ``<tool_call>``).
        thinking: Qwen3 thinking mode (``<think>`` blocks, ``enable_thinking``).
        code: Specialised for code.
        math: Specialised for math.
        vision: Accepts images and video.
    """

    tools: bool = False
    thinking: bool = False
    code: bool = False
    math: bool = False
    vision: bool = False


class EnginePreset(BaseModel):
    """vLLM settings a variant needs, in ``AsyncEngineArgs`` / frontend-args terms.

    Attributes:
        reasoning_parser: vLLM reasoning parser (``qwen3`` for Qwen3).
        tool_call_parser: vLLM tool parser; ``hermes`` for Qwen2.5 and Qwen3 (``<tool_call>{json}``).
        enable_auto_tool_choice: Let the model decide to call tools (needs a tool parser).
        max_model_len: Context window the engine is started with.
        tensor_parallel_size: GPUs per engine, sharding each layer.
        pipeline_parallel_size: Pipeline stages.
        data_parallel_size: Engine replicas inside one vLLM instance (MoE attention DP).
        enable_expert_parallel: Shard experts across the TP x DP GPUs instead of tensor-slicing them.
        gpu_memory_utilization: Fraction of each GPU vLLM may take.
        max_num_seqs: Maximum concurrent sequences per engine.
        limit_mm_per_prompt: Multimodal items per prompt, e.g. ``{"image": 4}``.
        dtype: Weight/activation dtype.
        quantization: vLLM quantization method (awq_marlin, gptq_marlin, fp8, ...).
        kv_cache_dtype: KV cache dtype (auto, fp8).
        runner: vLLM's model runner (``pooling`` for embedding and reranker models).
        convert: vLLM's model conversion (``embed``: a causal LM served as an embedding model).
        pooler_config: vLLM pooler settings (``pooling_type``, ``use_activation``, ...).
        hf_overrides: Changes to the checkpoint's ``config.json`` (Qwen3-Reranker: the sequence-classification
            architecture built from the ``no``/``yes`` token logits).
        chat_template: Prompt template (file path or the template itself); for Qwen3-Reranker, the score
            template that turns a (query, document) pair into the model's yes/no prompt.
        extra: Any other engine kwargs, passed through as is.
    """

    model_config = ConfigDict(extra="forbid")

    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    enable_auto_tool_choice: bool | None = None
    max_model_len: int | None = Field(default=None, gt=0)
    tensor_parallel_size: int | None = Field(default=None, ge=1)
    pipeline_parallel_size: int | None = Field(default=None, ge=1)
    data_parallel_size: int | None = Field(default=None, ge=1)
    enable_expert_parallel: bool | None = None
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    limit_mm_per_prompt: dict[str, int] | None = None
    dtype: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    runner: Literal["generate", "pooling"] | None = None
    convert: Literal["embed", "classify"] | None = None
    pooler_config: dict[str, Any] | None = None
    hf_overrides: dict[str, Any] | None = None
    chat_template: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> EnginePreset:
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            raise ValueError("enable_auto_tool_choice needs a tool_call_parser")
        return self

    def to_engine_kwargs(self) -> dict[str, Any]:
        """Return the preset as engine kwargs (only the keys that are set; ``extra`` merged last).

        Returns:
            A dict suitable for Ray Serve LLM's ``engine_kwargs`` / vLLM's engine args.
        """
        out = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        out.update(self.extra)
        return out

    def merged(self, overrides: dict[str, Any]) -> EnginePreset:
        """Return a copy with ``overrides`` applied (known fields set, other keys into ``extra``).

        Args:
            overrides: Engine kwargs to apply over this preset.

        Returns:
            A new preset.
        """
        data = self.model_dump()
        extra = dict(data.pop("extra"))
        for key, value in overrides.items():
            if key in data:
                data[key] = value
            else:
                extra[key] = value
        return EnginePreset(**data, extra=extra)


class Quantization(_Strict):
    """A quantized checkpoint Qwen publishes for a variant.

    Attributes:
        method: awq | gptq-int4 | gptq-int8 | fp8.
        hub_id: The checkpoint's hub id.
        engine_quantization: vLLM's ``quantization`` value on GPUs that have the fast kernels.
        weight_bits: Bits per quantized weight.
        group_size: Weights sharing one scale (0 for block/channel-wise FP8).
        min_compute_capability: Lowest CUDA compute capability that runs it.
        fallback_quantization: vLLM value on GPUs below the fast kernels' capability (None: same).
        fast_kernel_capability: Capability from which ``engine_quantization`` is used.
    """

    method: QuantMethod
    hub_id: str
    engine_quantization: str
    weight_bits: int
    group_size: int = 128
    min_compute_capability: float
    fallback_quantization: str | None = None
    fast_kernel_capability: float = 8.0

    def engine_value(self, compute_capability: float | None) -> str:
        """Return vLLM's ``quantization`` setting for a GPU of this compute capability.

        Args:
            compute_capability: The GPU's capability, or None when unknown (assume a modern GPU).

        Returns:
            The method name vLLM expects.
        """
        if compute_capability is not None and compute_capability < self.fast_kernel_capability:
            return self.fallback_quantization or self.engine_quantization
        return self.engine_quantization


class DeploymentPreset(_Strict):
    """A named hardware layout for a variant, e.g. ``h200x8`` for Qwen3-235B-A22B.

    Attributes:
        name: Preset id, selectable from the fleet config (``preset: h200x8``).
        description: What it is for.
        gpu_type: GPU the layout was sized for.
        gpu_count: GPUs one replica uses (TP x PP x DP).
        quantization: Quantized checkpoint it uses (None: bf16).
        engine: Engine kwargs it sets (parallelism, memory share, context).
    """

    name: str
    description: str = ""
    gpu_type: str
    gpu_count: int = Field(ge=1)
    quantization: QuantMethod | None = None
    engine: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> DeploymentPreset:
        used = 1
        for key in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
            used *= int(self.engine.get(key, 1))
        if used != self.gpu_count:
            raise ValueError(f"preset {self.name}: TP x PP x DP = {used} but gpu_count = {self.gpu_count}")
        return self


class GpuType(_Strict):
    """A GPU model the sizing and validation know.

    Attributes:
        name: Canonical name (H200, H100, A100-80GB, ...).
        memory_gib: Usable device memory in GiB.
        compute_capability: CUDA compute capability, e.g. 9.0.
        aliases: Other spellings accepted in configs.
    """

    name: str
    memory_gib: float = Field(gt=0)
    compute_capability: float
    aliases: list[str] = Field(default_factory=list)

    @property
    def memory_bytes(self) -> int:
        """Device memory in bytes."""
        return int(self.memory_gib * 1024**3)

    @property
    def supports_bf16(self) -> bool:
        """Whether bfloat16 runs natively (Ampere, compute capability 8.0, and later)."""
        return self.compute_capability >= 8.0


class Variant(_Strict):
    """One Qwen model the stack knows how to serve.

    Attributes:
        name: Short lowercase id, e.g. ``qwen2.5-7b-instruct``.
        hub_id: Hugging Face hub id, e.g. ``Qwen/Qwen2.5-7B-Instruct``.
        family: qwen2.5 | qwen2.5-coder | qwen2.5-math | qwen2.5-vl | qwen3 | qwen3-moe.
        kind: dense or moe.
        architecture: Config numbers.
        context_length: Native context window in tokens.
        extended_context_length: Window with YaRN rope scaling, when the model card documents one.
        modalities: Inputs it accepts.
        capabilities: Tools, thinking, code, math, vision.
        tasks: Router tasks it suits, best first.
        engine: Default engine preset (one GPU, or CPU).
        quantizations: Quantized checkpoints Qwen publishes.
        presets: Named multi-GPU layouts.
        runner: What it serves: ``generate`` (chat), ``embed`` (embeddings) or ``score`` (rerank/score).
        description: One line for tables and docs.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    hub_id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
    family: Family
    kind: Literal["dense", "moe"]
    architecture: Architecture
    context_length: int = Field(gt=0)
    extended_context_length: int | None = None
    modalities: list[Modality] = Field(default_factory=lambda: list[Modality](["text"]))
    capabilities: Capabilities
    tasks: list[str]
    engine: EnginePreset = Field(default_factory=EnginePreset)
    quantizations: list[Quantization] = Field(default_factory=list)
    presets: list[DeploymentPreset] = Field(default_factory=list)
    runner: Runner = "generate"
    description: str = ""

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown tasks {unknown}; known: {list(TASKS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Variant:
        if (self.kind == "moe") != (self.architecture.model_type == "qwen3_moe"):
            raise ValueError(f"{self.name}: kind {self.kind} does not match model_type {self.architecture.model_type}")
        if self.capabilities.vision != ("image" in self.modalities):
            raise ValueError(f"{self.name}: vision capability and image modality disagree")
        if self.capabilities.thinking and self.engine.reasoning_parser is None:
            raise ValueError(f"{self.name}: a thinking model needs a reasoning_parser")
        if self.capabilities.tools != bool(self.engine.tool_call_parser):
            raise ValueError(f"{self.name}: tools capability and tool_call_parser disagree")
        if self.context_length > self.max_context_length:
            raise ValueError(f"{self.name}: context_length exceeds max_position_embeddings")
        if self.runner in POOLING_RUNNERS:
            if self.tasks or any(self.capabilities.model_dump().values()):
                raise ValueError(f"{self.name}: a {self.runner} model serves no chat task and has no chat capability")
            if self.engine.runner != "pooling":
                raise ValueError(f"{self.name}: a {self.runner} model needs engine runner: pooling")
        methods = [q.method for q in self.quantizations]
        if len(set(methods)) != len(methods):
            raise ValueError(f"{self.name}: duplicate quantization methods {methods}")
        for preset in self.presets:
            if preset.quantization and preset.quantization not in methods:
                raise ValueError(f"{self.name}: preset {preset.name} uses unknown quantization {preset.quantization}")
        return self

    @property
    def max_context_length(self) -> int:
        """Longest context the model supports (YaRN-extended when documented)."""
        return max(self.extended_context_length or 0, self.architecture.max_position_embeddings, self.context_length)

    def quantization(self, method: str) -> Quantization:
        """Return the quantized checkpoint for ``method``.

        Args:
            method: awq | gptq-int4 | gptq-int8 | fp8.

        Raises:
            KeyError: The variant has no such checkpoint (the message lists those it has).
        """
        for quant in self.quantizations:
            if quant.method == method:
                return quant
        have: list[str] = [q.method for q in self.quantizations] or ["none"]
        raise KeyError(f"{self.name} has no {method} checkpoint; available: {', '.join(have)}")

    def preset(self, name: str) -> DeploymentPreset:
        """Return the named deployment preset.

        Args:
            name: Preset id, e.g. ``h200x8``.

        Raises:
            KeyError: No such preset (the message lists those it has).
        """
        for preset in self.presets:
            if preset.name == name:
                return preset
        have = [p.name for p in self.presets] or ["none"]
        raise KeyError(f"{self.name} has no preset {name!r}; available: {', '.join(have)}")
