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
    "build_catalog",
    "get_gpu",
    "get_variant",
    "load_catalog",
]
