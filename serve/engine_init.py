"""Engine start: skip Ray Serve LLM's per-node model download when the model is a local directory.

Before it starts vLLM, Ray Serve LLM's engine runs one Ray task on every node of the replica's placement group
(``initialize_node``) that downloads the model and tokenizer from the Hub. That task needs a worker process of
its own (the replica's runtime environment, so none is idle to reuse on a node that just joined), which
imports torch and transformers before it finds there is nothing to download. A replacement replica pays for
that on the node it lands on: 20 s and more of a shared 2-core host, on the critical path of a node-loss
recovery. With ``model_path`` (a directory on the node: a tiny model, a baked-in or mounted checkpoint) there
is nothing to download, and :class:`LocalModelInit` skips the task; vLLM reads the directory itself.

A Hub id, or a path that is not a directory on the replica's node, keeps Ray's download.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ray.llm._internal.common.callbacks.base import CallbackBase

logger = logging.getLogger(__name__)

#: Import path Ray Serve LLM loads the callback from (``LLMConfig.callback_config.callback_class``).
CALLBACK_IMPORT_PATH = "serve.engine_init:LocalModelInit"


def is_local_model(source: str) -> bool:
    """Whether ``source`` is a model directory on this node (nothing to download)."""
    return bool(source) and os.path.isdir(os.path.expanduser(source))


class LocalModelInit(CallbackBase):
    """Ray Serve LLM engine callback: no per-node download task for a model that is a local directory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    async def on_before_node_init(self) -> None:
        """Skip ``initialize_node`` when the model source is a directory on this node."""
        loading: Any = self.llm_config.model_loading_config
        source = str((loading.get("model_source") if isinstance(loading, dict) else loading.model_source) or "")
        if is_local_model(source):
            self.ctx.run_init_node = False
            logger.info("model is a local directory: no per-node download task")
