"""Memory arithmetic computed from a variant's architecture: parameters, weight bytes, KV cache, GPUs needed.

Stated approximations:
    * Parameter counts are exact for the decoder (embeddings, q/k/v/o with the Qwen2 q/k/v bias, Qwen3 q/k
      RMSNorm, SwiGLU MLP or routed experts + router, layer norms, final norm, lm_head unless tied).
    * The Qwen2.5-VL vision tower is counted from its config (ViT blocks, patch embedding, patch merger).
      All counts match transformers' models built from :func:`serve.catalog.hfconfig.hf_config` exactly
      (tests/unit/test_catalog.py checks this on the meta device).
    * Quantized checkpoints quantize the decoder's linear layers only; embeddings, lm_head, norms, the MoE
      router and the vision tower stay bf16. Group-wise int formats pay one fp16 scale and one packed zero
      point per group; block-wise FP8 pays one fp32 scale per 128x128 block.
    * Embedding and reranker variants are counted in their causal-LM layout: the lm_head of an untied one
      (Qwen3-Embedding-8B, Qwen3-Reranker-8B) is counted although vLLM's pooling runner keeps none of it (the
      reranker keeps two rows), an overestimate of 0.62 B parameters (1.2 GB bf16) for the 8B models.
    * Runtime overhead per GPU (activations, CUDA graphs, NCCL buffers, CUDA context) is a flat
      ``RUNTIME_OVERHEAD_GIB``; vLLM profiles the real value at start-up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from serve.catalog.models import Architecture, GpuType, Quantization, Variant, VisionArchitecture

logger = logging.getLogger(__name__)

GIB = 1024**3
RUNTIME_OVERHEAD_GIB = 2.0
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
DTYPE_BYTES: dict[str, float] = {
    "auto": 2, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "float": 4,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1, "int4": 0.5,
}
#: GPU counts tried by :func:`gpus_needed`: TP within one 8-GPU node, then pipeline stages of 8.
GPU_COUNTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by component.

    Attributes:
        embedding: Token embedding.
        lm_head: Output projection (0 when tied).
        attention: q/k/v/o projections, their biases and q/k norms, all layers.
        mlp: Dense SwiGLU MLPs, all layers.
        experts: Routed experts, all layers.
        active_experts: Experts one token uses, all layers.
        router: MoE gates, all layers.
        norms: Layer norms and the final norm.
        vision: Vision tower (Qwen2.5-VL).
    """

    embedding: int
    lm_head: int
    attention: int
    mlp: int
    experts: int
    active_experts: int
    router: int
    norms: int
    vision: int

    @property
    def total(self) -> int:
        """All parameters."""
        return (self.embedding + self.lm_head + self.attention + self.mlp + self.experts + self.router
                + self.norms + self.vision)

    @property
    def active(self) -> int:
        """Parameters used per token (MoE: only the routed experts that fire)."""
        return self.total - self.experts + self.active_experts

    @property
    def quantizable(self) -> int:
        """Decoder linear-layer weights that quantized checkpoints store in low precision."""
        return self.attention + self.mlp + self.experts

    @property
    def expert_free(self) -> int:
        """Everything except routed experts (replicated across data-parallel ranks)."""
        return self.total - self.experts


def _vision_params(v: VisionArchitecture) -> int:
    d, inter = v.hidden_size, v.intermediate_size
    patch = v.in_channels * v.temporal_patch_size * v.patch_size**2 * d
    block = (d * 3 * d + 3 * d) + (d * d + d) + (3 * d * inter + 2 * inter + d) + 2 * d
    merged = d * v.spatial_merge_size**2
    merger = d + (merged * merged + merged) + (merged * v.out_hidden_size + v.out_hidden_size)
    return patch + v.depth * block + merger


def param_counts(arch: Architecture) -> ParamCounts:
    """Count parameters from architecture numbers.

    Args:
        arch: The variant's architecture.

    Returns:
        Counts by component.
    """
    h, layers = arch.hidden_size, arch.num_hidden_layers
    q_dim = arch.num_attention_heads * arch.head_dim
    kv_dim = arch.num_key_value_heads * arch.head_dim
    attn = h * q_dim + 2 * h * kv_dim + q_dim * h
    if arch.attention_bias:
        attn += q_dim + 2 * kv_dim
    if arch.qk_norm:
        attn += 2 * arch.head_dim
    experts = active = router = mlp = 0
    if arch.num_experts:
        per_expert = 3 * h * arch.moe_intermediate_size
        experts = layers * arch.num_experts * per_expert
        active = layers * arch.num_experts_per_tok * per_expert
        router = layers * h * arch.num_experts
    else:
        mlp = layers * 3 * h * arch.intermediate_size
    embedding = arch.vocab_size * h
    return ParamCounts(
        embedding=embedding,
        lm_head=0 if arch.tie_word_embeddings else embedding,
        attention=layers * attn,
        mlp=mlp,
        experts=experts,
        active_experts=active,
        router=router,
        norms=layers * 2 * h + h,
        vision=_vision_params(arch.vision) if arch.vision else 0,
    )


def _bytes_per_quantized_weight(quant: Quantization) -> float:
    bits = quant.weight_bits / 8
    if quant.group_size:
        return bits + (2 + bits) / quant.group_size  # fp16 scale + packed zero point per group
    return bits + 4 / (128 * 128)  # fp32 scale per 128x128 block


def weight_bytes(variant: Variant, quantization: Quantization | str | None = None, dtype: str = "bfloat16") -> int:
    """Bytes of weights in memory.

    Args:
        variant: The model.
        quantization: A quantized checkpoint (object or method name), or None for ``dtype``.
        dtype: Unquantized dtype.

    Returns:
        Weight bytes.
    """
    counts = param_counts(variant.architecture)
    quant = variant.quantization(quantization) if isinstance(quantization, str) else quantization
    if quant is None:
        return int(counts.total * DTYPE_BYTES[dtype])
    rest = counts.total - counts.quantizable
    return int(counts.quantizable * _bytes_per_quantized_weight(quant) + rest * 2)


def kv_bytes_per_token(arch: Architecture, kv_dtype: str = "bfloat16") -> int:
    """KV-cache bytes per token: 2 (K and V) x layers x kv_heads x head_dim x dtype bytes.

    Args:
        arch: The architecture.
        kv_dtype: KV cache dtype (``auto`` means the model dtype, bf16).
    """
    return int(2 * arch.num_hidden_layers * arch.num_key_value_heads * arch.head_dim * DTYPE_BYTES[kv_dtype])


@dataclass(frozen=True)
class Layout:
    """How one replica spreads over GPUs.

    Attributes:
        tp: Tensor-parallel size.
        pp: Pipeline stages.
        dp: Data-parallel ranks (MoE: attention replicated, experts sharded over tp x dp).
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1

    @property
    def gpus(self) -> int:
        """GPUs used."""
        return self.tp * self.pp * self.dp

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Layout:
        """Read tensor/pipeline/data parallel sizes from engine kwargs."""
        return cls(int(kwargs.get("tensor_parallel_size") or 1), int(kwargs.get("pipeline_parallel_size") or 1),
                   int(kwargs.get("data_parallel_size") or 1))


def weight_bytes_per_gpu(variant: Variant, layout: Layout, quantization: Quantization | None = None,
                         dtype: str = "bfloat16") -> int:
    """Weight bytes on each GPU of a layout (experts shard over all GPUs; the rest over TP x PP).

    Args:
        variant: The model.
        layout: Parallel sizes.
        quantization: Quantized checkpoint, if any.
        dtype: Unquantized dtype.
    """
    total = weight_bytes(variant, quantization, dtype)
    counts = param_counts(variant.architecture)
    expert_share = counts.experts / counts.total if counts.total else 0.0
    if quantization is not None and counts.experts:
        expert_share = counts.experts * _bytes_per_quantized_weight(quantization) / total
    experts = total * expert_share
    return int((total - experts) / (layout.tp * layout.pp) + experts / layout.gpus)


def kv_bytes_per_token_per_gpu(arch: Architecture, layout: Layout, kv_dtype: str = "bfloat16") -> float:
    """KV bytes per token on one GPU: layers split over PP, KV heads over TP (replicated when TP > heads)."""
    heads = max(1, math.ceil(arch.num_key_value_heads / layout.tp))
    layers = math.ceil(arch.num_hidden_layers / layout.pp)
    return 2 * layers * heads * arch.head_dim * DTYPE_BYTES[kv_dtype]


def max_kv_tokens(variant: Variant, gpu: GpuType, layout: Layout, quantization: Quantization | None = None,
                  gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION, kv_dtype: str = "bfloat16") -> int:
    """Tokens of KV cache one replica holds (per DP rank times ranks); negative when weights do not fit.

    Args:
        variant: The model.
        gpu: The GPU type.
        layout: Parallel sizes.
        quantization: Quantized checkpoint, if any.
        gpu_memory_utilization: vLLM's share of each GPU.
        kv_dtype: KV cache dtype.
    """
    budget = gpu.memory_bytes * gpu_memory_utilization - RUNTIME_OVERHEAD_GIB * GIB
    free = budget - weight_bytes_per_gpu(variant, layout, quantization)
    return int(free / kv_bytes_per_token_per_gpu(variant.architecture, layout, kv_dtype)) * layout.dp


def default_layout(variant: Variant, gpus: int) -> Layout | None:
    """TP up to 8 (must divide the attention heads), then pipeline stages; None when impossible."""
    tp = min(gpus, 8)
    if variant.architecture.num_attention_heads % tp or gpus % tp:
        return None
    pp = gpus // tp
    return Layout(tp=tp, pp=pp) if pp <= variant.architecture.num_hidden_layers else None


def gpus_needed(variant: Variant, gpu: GpuType, context: int | None = None, quantization: Quantization | None = None,
                gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION) -> int | None:
    """Fewest GPUs (1, 2, 4, 8, then stages of 8) holding the weights plus KV for one full-length sequence.

    Args:
        variant: The model.
        gpu: The GPU type.
        context: Sequence length to fit (default: the variant's context length).
        quantization: Quantized checkpoint, if any.
        gpu_memory_utilization: vLLM's share of each GPU.

    Returns:
        GPU count, or None when even 64 do not suffice.
    """
    tokens = context or variant.context_length
    for count in GPU_COUNTS:
        layout = default_layout(variant, count)
        if layout and max_kv_tokens(variant, gpu, layout, quantization, gpu_memory_utilization) >= tokens:
            return count
    return None


def check_fit(variant: Variant, gpu: GpuType, kwargs: dict[str, Any], count: int,
              quantization: Quantization | None) -> str | None:
    """Explain why a deployment cannot start on ``count`` GPUs of ``gpu``, or return None when it fits.

    Args:
        variant: The model.
        gpu: The GPU type.
        kwargs: The deployment's engine kwargs (parallel sizes, memory share, max_model_len, kv dtype).
        count: GPUs per replica.
        quantization: Quantized checkpoint, if any.
    """
    layout = Layout.from_kwargs(kwargs)
    util = float(kwargs.get("gpu_memory_utilization") or DEFAULT_GPU_MEMORY_UTILIZATION)
    kv_dtype = str(kwargs.get("kv_cache_dtype") or "bfloat16")
    dtype = "bfloat16" if quantization is not None else str(kwargs.get("dtype") or "bfloat16")
    per_gpu = weight_bytes_per_gpu(variant, layout, quantization, dtype if dtype in DTYPE_BYTES else "bfloat16")
    budget = gpu.memory_bytes * util - RUNTIME_OVERHEAD_GIB * GIB
    tokens = int(kwargs.get("max_model_len") or variant.context_length)
    kv_tokens = int((budget - per_gpu) / kv_bytes_per_token_per_gpu(variant.architecture, layout, kv_dtype))
    if kv_tokens >= tokens:
        return None
    need = gpus_needed(variant, gpu, tokens, quantization, util)
    hint = f"{need} {gpu.name} GPUs" if need else f"more than {GPU_COUNTS[-1]} {gpu.name} GPUs"
    what = quantization.method if quantization else "bf16"
    return (
        f"{variant.name} ({what}) does not fit: {per_gpu / GIB:.1f} GiB of weights per GPU with {layout.gpus} GPU(s), "
        f"{gpu.name} gives {budget / GIB:.1f} GiB at gpu_memory_utilization={util} (after "
        f"{RUNTIME_OVERHEAD_GIB} GiB runtime overhead), leaving KV room for {max(kv_tokens, 0)} tokens < "
        f"max_model_len={tokens}; needs about {hint} (accelerator.count={count}), a quantized checkpoint, "
        f"or a shorter max_model_len"
    )
