"""The ``qwen-serve models`` table: every variant with its computed sizing on a chosen GPU type."""

from __future__ import annotations

import json as _json
import logging
from typing import Any

from serve.catalog.catalog import load_catalog
from serve.catalog.models import Variant
from serve.catalog.sizing import gpus_needed, kv_bytes_per_token, param_counts, weight_bytes

logger = logging.getLogger(__name__)

COLUMNS = ("name", "family", "kind", "params", "active", "ctx", "caps", "tasks", "weights GB bf16", "KV KiB/tok",
           "GPUs")
_CAP_LETTERS = (("tools", "T"), ("thinking", "R"), ("code", "C"), ("math", "M"), ("vision", "V"))


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n < 10e9 else f"{n / 1e9:.1f}B"


def _ctx(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens / 1000:.0f}K"


def variant_row(variant: Variant, gpu_type: str = "H200") -> dict[str, Any]:
    """Computed facts about one variant, as a JSON-ready dict.

    Args:
        variant: The variant.
        gpu_type: GPU type for the GPUs-needed column.
    """
    gpu = load_catalog().gpu(gpu_type)
    counts = param_counts(variant.architecture)
    return {
        "name": variant.name,
        "hub_id": variant.hub_id,
        "family": variant.family,
        "kind": variant.kind,
        "params": counts.total,
        "active_params": counts.active,
        "context_length": variant.context_length,
        "max_context_length": variant.max_context_length,
        "modalities": list(variant.modalities),
        "capabilities": variant.capabilities.model_dump(),
        "tasks": list(variant.tasks),
        "runner": variant.runner,
        "weights_bytes_bf16": weight_bytes(variant),
        "kv_bytes_per_token": kv_bytes_per_token(variant.architecture),
        "gpu_type": gpu.name,
        "gpus_needed": gpus_needed(variant, gpu),
        "quantizations": {
            q.method: {"hub_id": q.hub_id, "weights_bytes": weight_bytes(variant, q),
                       "gpus_needed": gpus_needed(variant, gpu, quantization=q)
                       if gpu.compute_capability >= q.min_compute_capability else None}
            for q in variant.quantizations
        },
        "presets": [p.name for p in variant.presets],
    }


def _text_cells(row: dict[str, Any]) -> list[str]:
    caps = "".join(letter for key, letter in _CAP_LETTERS if row["capabilities"][key]) or "-"
    need = row["gpus_needed"]
    return [
        row["name"], row["family"], row["kind"], _billions(row["params"]),
        _billions(row["active_params"]) if row["kind"] == "moe" else "-",
        _ctx(row["context_length"]), caps, ",".join(row["tasks"]) or f"({row['runner']})",
        f"{row['weights_bytes_bf16'] / 1e9:.1f}", f"{row['kv_bytes_per_token'] / 1024:.0f}",
        str(need) if need else ">64",
    ]


def models_table(gpu_type: str = "H200", json: bool = False) -> str:
    """Render the catalog as a text table (or JSON).

    Args:
        gpu_type: GPU type for the GPUs-needed column (bf16, native context, gpu_memory_utilization 0.9).
        json: Return a JSON array of per-variant objects instead.

    Returns:
        The rendered table.
    """
    rows = [variant_row(v, gpu_type) for v in load_catalog().variants]
    if json:
        return _json.dumps(rows, indent=2)
    gpu = load_catalog().gpu(gpu_type).name
    header = [*COLUMNS[:-1], f"{gpu}s needed"]
    cells = [_text_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    numeric = {3, 4, 5, 8, 9, 10}

    def fmt(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(c) for c in cells)]
    lines.append("")
    lines.append(f"caps: T tools, R thinking, C code, M math, V vision. GPUs needed: bf16 weights + KV for one "
                 f"native-context sequence at gpu_memory_utilization 0.9 on {gpu}.")
    return "\n".join(lines)
