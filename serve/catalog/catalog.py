"""Loading the catalog file and looking variants and GPUs up by name."""

from __future__ import annotations

import copy
import difflib
import functools
import logging
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from serve.catalog.models import QUANT_SUFFIX, GpuType, Quantization, Variant

logger = logging.getLogger(__name__)

CATALOG_FILE = "variants.yaml"


class UnknownVariantError(KeyError):
    """A name that is neither a catalog variant name nor a hub id; the message lists close matches."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown Qwen variant {name!r}{hint} (`qwen-serve models` lists them all)")

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; show the plain message instead.
        return str(self.args[0])


class UnknownGpuError(KeyError):
    """A GPU type the catalog does not know; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown gpu_type {name!r}; known: {', '.join(known)}")

    def __str__(self) -> str:
        return str(self.args[0])


class Catalog(BaseModel):
    """All known variants and GPU types.

    Attributes:
        variants: Every Qwen variant, in catalog order.
        gpus: The GPU table.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    variants: list[Variant]
    gpus: list[GpuType] = Field(default_factory=list)

    def model_post_init(self, __context: Any) -> None:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate variant names in catalog: {dupes}")

    def _index(self) -> dict[str, Variant]:
        index: dict[str, Variant] = {}
        for variant in self.variants:
            index[variant.name] = variant
            index[variant.hub_id.lower()] = variant
            index[variant.hub_id.split("/", 1)[1].lower()] = variant
        return index

    def get(self, name_or_hub_id: str) -> Variant:
        """Look a variant up by short name or hub id (case-insensitive).

        Args:
            name_or_hub_id: e.g. ``qwen2.5-7b-instruct``, ``Qwen/Qwen2.5-7B-Instruct`` or ``Qwen2.5-7B-Instruct``.

        Returns:
            The variant.

        Raises:
            UnknownVariantError: Not found; the message lists close matches.
        """
        key = name_or_hub_id.strip().lower()
        index = self._index()
        if key in index:
            return index[key]
        names = [v.name for v in self.variants]
        close = [n for n in names if key and key in n]
        close += [n for n in difflib.get_close_matches(key, names, n=3, cutoff=0.6) if n not in close]
        close = close[:3]
        raise UnknownVariantError(name_or_hub_id, close)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._index()

    @property
    def names(self) -> list[str]:
        """All variant names, in catalog order."""
        return [v.name for v in self.variants]

    def gpu(self, name: str) -> GpuType:
        """Look a GPU type up by name or alias (case-insensitive).

        Args:
            name: e.g. ``H200``, ``a100-80gb``.

        Raises:
            UnknownGpuError: Not in the table.
        """
        key = name.strip().lower()
        for gpu in self.gpus:
            if key == gpu.name.lower() or key in (a.lower() for a in gpu.aliases):
                return gpu
        raise UnknownGpuError(name, [g.name for g in self.gpus])


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _expand_quantizations(entry: dict[str, Any], methods: dict[str, dict[str, Any]]) -> list[Quantization]:
    quants: list[Quantization] = []
    for item in entry.get("quantizations", []):
        spec = {"method": item} if isinstance(item, str) else dict(item)
        method = spec["method"]
        if method not in methods:
            raise ValueError(f"{entry.get('name')}: unknown quantization method {method!r}")
        spec.setdefault("hub_id", entry["hub_id"] + QUANT_SUFFIX[method])
        quants.append(Quantization(**{**methods[method], **spec}))
    return quants


def build_catalog(data: dict[str, Any]) -> Catalog:
    """Build a catalog from the parsed YAML document (families merged into variants).

    Args:
        data: The document with ``gpus``, ``quantization_methods``, ``families`` and ``variants``.

    Returns:
        The validated catalog.
    """
    families: dict[str, dict[str, Any]] = data.get("families", {})
    methods: dict[str, dict[str, Any]] = data.get("quantization_methods", {})
    variants = []
    for entry in data["variants"]:
        family = entry.get("family")
        if family not in families:
            raise ValueError(f"{entry.get('name')}: unknown family {family!r}")
        merged = _deep_merge(families[family], {k: v for k, v in entry.items() if k != "quantizations"})
        merged["quantizations"] = _expand_quantizations(entry, methods)
        merged.setdefault("engine", {})
        merged["engine"].setdefault("max_model_len", merged["context_length"])
        merged["capabilities"] = {"tools": False, **merged.get("capabilities", {})}
        variants.append(Variant(**merged))
    return Catalog(variants=variants, gpus=[GpuType(**g) for g in data.get("gpus", [])])


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Load the packaged catalog (cached).

    Returns:
        The catalog of all Qwen variants and GPU types.
    """
    text = resources.files("serve.catalog").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    catalog = build_catalog(yaml.safe_load(text))
    logger.debug("loaded %d variants and %d GPU types", len(catalog.variants), len(catalog.gpus))
    return catalog


def get_variant(name: str) -> Variant:
    """Shortcut for ``load_catalog().get(name)``.

    Args:
        name: Variant name or hub id.

    Raises:
        UnknownVariantError: Not found.
    """
    return load_catalog().get(name)


def get_gpu(name: str) -> GpuType:
    """Shortcut for ``load_catalog().gpu(name)``.

    Args:
        name: GPU type name or alias.

    Raises:
        UnknownGpuError: Not found.
    """
    return load_catalog().gpu(name)
