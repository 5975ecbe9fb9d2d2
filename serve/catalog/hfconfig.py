"""Write a variant's Hugging Face ``config.json`` from the catalog (for ``load_format: dummy`` GPU runs).

With the real config, the real tokenizer and vLLM's dummy weights, an engine has the real shapes and speed
and produces random text: enough to benchmark serving without downloading weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from serve.catalog.models import Architecture, Quantization, Variant

logger = logging.getLogger(__name__)

BOS_TOKEN_ID = 151643  # <|endoftext|>
EOS_TOKEN_ID = 151645  # <|im_end|>
VISION_TOKEN_IDS = {
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
}
_ARCHITECTURES = {
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}


def _text_config(arch: Architecture) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[arch.model_type]],
        "model_type": arch.model_type,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_hidden_layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_key_value_heads,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.max_position_embeddings,
        "rope_theta": arch.rope_theta,
        "rms_norm_eps": arch.rms_norm_eps,
        "tie_word_embeddings": arch.tie_word_embeddings,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_TOKEN_ID,
        "eos_token_id": EOS_TOKEN_ID,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": arch.num_hidden_layers,
    }
    if arch.model_type in ("qwen3", "qwen3_moe"):
        cfg["head_dim"] = arch.head_dim
        cfg["attention_bias"] = arch.attention_bias
    if arch.model_type == "qwen3_moe":
        cfg.update(
            num_experts=arch.num_experts,
            num_experts_per_tok=arch.num_experts_per_tok,
            moe_intermediate_size=arch.moe_intermediate_size,
            norm_topk_prob=arch.norm_topk_prob,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            output_router_logits=False,
            router_aux_loss_coef=0.001,
        )
    return cfg


def _vision_config(arch: Architecture) -> dict[str, Any]:
    assert arch.vision is not None
    v = arch.vision
    return {
        "model_type": "qwen2_5_vl",
        "depth": v.depth,
        "hidden_size": v.hidden_size,
        "intermediate_size": v.intermediate_size,
        "num_heads": v.num_heads,
        "in_chans": v.in_channels,
        "out_hidden_size": v.out_hidden_size,
        "patch_size": v.patch_size,
        "spatial_patch_size": v.patch_size,
        "spatial_merge_size": v.spatial_merge_size,
        "temporal_patch_size": v.temporal_patch_size,
        "window_size": v.window_size,
        "fullatt_block_indexes": list(v.fullatt_block_indexes),
        "tokens_per_second": 2,
        "hidden_act": "silu",
    }


def quantization_config(quant: Quantization) -> dict[str, Any]:
    """The ``quantization_config`` block a checkpoint of this method carries.

    Args:
        quant: The quantized checkpoint.
    """
    if quant.method == "awq":
        return {"quant_method": "awq", "bits": 4, "group_size": quant.group_size, "zero_point": True,
                "version": "gemm"}
    if quant.method.startswith("gptq"):
        return {"quant_method": "gptq", "bits": quant.weight_bits, "group_size": quant.group_size,
                "desc_act": False, "sym": True, "damp_percent": 0.01}
    return {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [128, 128]}


def hf_config(variant: Variant, quantization: str | None = None) -> dict[str, Any]:
    """Build the variant's ``config.json`` content.

    Args:
        variant: The catalog variant.
        quantization: Method of one of its quantized checkpoints (adds ``quantization_config``).

    Returns:
        The config as a dict (Qwen2.5-VL also carries ``vision_config``, M-RoPE and its vision token ids).
    """
    arch = variant.architecture
    cfg = _text_config(arch)
    if arch.vision is not None:
        cfg["vision_config"] = _vision_config(arch)
        cfg["rope_scaling"] = {"type": "mrope", "rope_type": "default", "mrope_section": [16, 24, 24]}
        cfg.update(VISION_TOKEN_IDS)
    if quantization is not None:
        cfg["quantization_config"] = quantization_config(variant.quantization(quantization))
    return cfg


def write_hf_config(variant: Variant, directory: str | Path, quantization: str | None = None) -> Path:
    """Write ``config.json`` for the variant into ``directory`` (created if needed).

    Args:
        variant: The catalog variant.
        directory: Target model directory.
        quantization: Optional quantized checkpoint method.

    Returns:
        The written file's path.
    """
    path = Path(directory) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hf_config(variant, quantization), indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s for %s", path, variant.hub_id)
    return path
