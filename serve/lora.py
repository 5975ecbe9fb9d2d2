"""LoRA adapters beside a base deployment: tiny random adapters for tests, and vLLM's static adapter list.

How adapters are served: the router relays HTTP straight to each engine replica's own vLLM OpenAI app
(:mod:`serve.engine_server`), which bypasses Ray Serve LLM's multiplexed LoRA loading (that path resolves
adapters from ``serve.get_multiplexed_model_id()``, set only for requests that came through a Serve handle).
So every adapter of a deployment is registered statically with vLLM (its ``lora_modules`` frontend
argument) under the served id ``<deployment>:<adapter>``: vLLM loads them at engine start, lists them in
its ``/v1/models`` and answers with that id in ``model``, the same id clients send to the router.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Projections the tiny adapters adapt (attention and MLP of every decoder layer).
TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def served_adapter_id(deployment: str, adapter: str) -> str:
    """The id an adapter is served under, by the router and by the engine: ``<deployment>:<adapter>``."""
    return f"{deployment}:{adapter}"


def lora_modules(deployment: str, adapters: dict[str, str]) -> list[dict[str, str]]:
    """vLLM ``lora_modules`` entries for a deployment's adapters.

    Args:
        deployment: The base deployment's name (vLLM's served model name).
        adapters: Adapter name -> local directory.

    Returns:
        ``[{"name": "<deployment>:<adapter>", "path": dir, "base_model_name": deployment}, ...]``.
    """
    return [
        {"name": served_adapter_id(deployment, name), "path": path, "base_model_name": deployment}
        for name, path in adapters.items()
    ]


def is_adapter(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a PEFT LoRA adapter (config and weights)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and (p / "adapter_model.safetensors").is_file()


def build_tiny_lora(
    base_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    rank: int = 8,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Build (or reuse) a random-weight PEFT LoRA adapter for a (tiny) base model.

    Both LoRA matrices are random (``init_lora_weights=False``), so the adapter really changes the output.

    Args:
        base_dir: The base model directory (a tiny model from :func:`serve.tiny.build_tiny_model`).
        out_dir: Target directory (``adapter_config.json`` + ``adapter_model.safetensors``).
        rank: LoRA rank (the deployment's ``max_lora_rank`` must be at least this).
        seed: Seed for the random weights.
        force: Rebuild even if an adapter is already there.

    Returns:
        The adapter directory.
    """
    out = Path(out_dir).expanduser()
    if is_adapter(out) and not force:
        logger.info("tiny LoRA adapter already at %s", out)
        return out
    import torch  # heavy: only when an adapter is actually built
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(Path(base_dir).expanduser()), dtype=torch.bfloat16)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    _record_base(tmp / "adapter_config.json", Path(base_dir).expanduser())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info("built tiny LoRA adapter (rank %d) at %s", rank, out)
    return out


def _record_base(config_path: Path, base_dir: Path) -> None:
    cfg: dict[str, Any] = json.loads(config_path.read_text())
    cfg["base_model_name_or_path"] = str(base_dir)
    config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
