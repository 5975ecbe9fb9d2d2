"""The Qwen family as validated data: variants, architectures, engine presets, GPUs and sizing.

Examples:
    >>> from serve.catalog import get_variant
    >>> get_variant("Qwen/Qwen2.5-7B-Instruct").architecture.num_key_value_heads
    4
"""

from serve.catalog.catalog import (
    Catalog,
    UnknownGpuError,
    UnknownVariantError,
    build_catalog,
    get_gpu,
    get_variant,
    load_catalog,
)
from serve.catalog.hfconfig import hf_config, write_hf_config
from serve.catalog.models import (
    QUANT_SUFFIX,
    TASKS,
    Architecture,
    Capabilities,
    DeploymentPreset,
    EnginePreset,
    GpuType,
    Quantization,
    Variant,
    VisionArchitecture,
)
from serve.catalog.report import models_table, variant_row
from serve.catalog.sizing import (
    Layout,
    ParamCounts,
    check_fit,
    gpus_needed,
    kv_bytes_per_token,
    max_kv_tokens,
    param_counts,
    weight_bytes,
    weight_bytes_per_gpu,
)

__all__ = [
    "QUANT_SUFFIX",
    "TASKS",
    "Architecture",
    "Capabilities",
    "Catalog",
    "DeploymentPreset",
    "EnginePreset",
    "GpuType",
    "Quantization",
    "UnknownGpuError",
    "UnknownVariantError",
    "Variant",
    "VisionArchitecture",
    "Layout",
    "ParamCounts",
    "check_fit",
    "gpus_needed",
    "hf_config",
    "kv_bytes_per_token",
    "max_kv_tokens",
    "models_table",
    "param_counts",
    "variant_row",
    "weight_bytes",
    "weight_bytes_per_gpu",
    "write_hf_config",
    "build_catalog",
    "get_gpu",
    "get_variant",
    "load_catalog",
]
