"""Which engine kwargs a deployment may set, and which only make sense on a GPU."""

from __future__ import annotations

import dataclasses
import functools
import logging

logger = logging.getLogger(__name__)

#: Engine kwargs that configure GPUs; refused on ``accelerator.type: cpu`` when set explicitly, and dropped
#: from a catalog preset when the deployment runs on CPU.
GPU_ONLY_KEYS: frozenset[str] = frozenset(
    {
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "data_parallel_size_local",
        "enable_expert_parallel",
        "enable_eplb",
        "gpu_memory_utilization",
        "kv_cache_memory_bytes",
        "cudagraph_capture_sizes",
        "max_cudagraph_capture_size",
        "disable_custom_all_reduce",
        "quantization",
    }
)

#: Parallelism keys whose product is the number of GPUs one replica uses.
PARALLEL_KEYS: tuple[str, ...] = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")


@functools.lru_cache(maxsize=1)
def allowed_engine_keys() -> frozenset[str] | None:
    """Return the engine kwargs vLLM accepts (AsyncEngineArgs + frontend args), or None without vLLM.

    Ray Serve LLM splits ``engine_kwargs`` between vLLM's ``AsyncEngineArgs`` and ``FrontendArgs``
    (tool/reasoning parser flags live in the latter) and rejects anything else, so the union is the allowed set.

    Returns:
        The allowed key set, or None when vLLM is not importable (then any key is accepted).
    """
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
    except Exception as exc:  # noqa: BLE001 - vLLM missing or broken: validate nothing rather than fail
        logger.debug("vLLM not importable (%s); engine keys are not checked", exc)
        return None
    keys = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    try:
        from vllm.entrypoints.launchers.cli_args import FrontendArgs

        keys |= {f.name for f in dataclasses.fields(FrontendArgs)}
    except Exception as exc:  # noqa: BLE001 - older layouts: fall back to the parser flags we use
        logger.debug("vLLM FrontendArgs not importable (%s)", exc)
        keys |= {"tool_call_parser", "enable_auto_tool_choice", "chat_template", "tool_parser_plugin"}
    return frozenset(keys)
