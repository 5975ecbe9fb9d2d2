"""Keep Ray Serve's replica log handlers alive when libraries in the replica reconfigure logging.

Why: a Serve replica logs through a ``MemoryHandler`` on the ``ray.serve`` logger whose ``target`` is the
replica's rotating log file. vLLM (at import) and uvicorn (``uvicorn.Config`` with its default
``log_config``) call :func:`logging.config.dictConfig`. A non-incremental ``dictConfig`` first *closes every
handler of the process* (``logging.config._clearExistingHandlers``), loggers it does not name included, and
``MemoryHandler.close`` sets ``target = None``. Nothing fails at once, but Ray Serve's
``ReplicaActor.is_allocated`` reads ``handler.target.baseFilename``: after a Serve controller restart the new
controller recovers each live replica through ``is_allocated``, gets ``AttributeError``, marks the replica
FAILED and kills it, healthy engine included (measured: both engines replaced, most requests failed).

The fix runs in every replica process before any user code, as Ray's worker process setup hook. Ray turns
``runtime_env={"worker_process_setup_hook": ...}`` into the env var ``__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR``
only for a *job's* runtime env (``ray.init``); in an actor's runtime env (what a Serve deployment gets) the
field is a no-op (Ray Serve LLM's own no-op hook is set that way). So the engine and router deployments set
that env var themselves (:func:`hook_env`): each worker process Ray starts for them (``default_worker.py``)
imports and calls :func:`protect_serve_logging` before the replica actor is created. It wraps
``logging.config.dictConfig`` so a
configuration call still applies in full, and afterwards gives the ``ray.serve`` logger back what the call
took: each ``MemoryHandler`` its target (through the public ``setTarget``; the rotating file handler reopens
its file on the next record) and the logger its enabled state (a config with
``disable_existing_loggers: true`` would disable it). Libraries that bound ``dictConfig`` by name at import
(vLLM: ``from logging.config import dictConfig``) get the wrapper because the hook runs before they are
imported. The engine's own uvicorn server is also started with ``log_config=None`` (``serve.engine_server``)
so it does not reconfigure logging at all.
"""

from __future__ import annotations

import functools
import logging
import logging.config
import logging.handlers
from collections.abc import Callable
from typing import Any

#: Ray Serve's logger (``ray.serve._private.constants.SERVE_LOGGER_NAME``).
SERVE_LOGGER = "ray.serve"
#: Import path of the setup hook.
SETUP_HOOK = "serve.replica_logging.protect_serve_logging"
#: The env var Ray's ``default_worker.py`` reads the setup hook from (``ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR``;
#: a value that is not a ``ray_runtime_env_func::`` key is imported as ``module.function``).
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"


def hook_env() -> dict[str, str]:
    """Env vars that make Ray run :func:`protect_serve_logging` in a deployment's replica processes."""
    return {SETUP_HOOK_ENV: SETUP_HOOK}

_MARK = "_qwen_serve_keeps_serve_handlers"


def _snapshot(logger: logging.Logger) -> tuple[bool, list[logging.Handler], list[tuple[Any, Any]]]:
    targets = [(h, h.target) for h in logger.handlers if isinstance(h, logging.handlers.MemoryHandler)]
    return logger.disabled, list(logger.handlers), targets


def _restore(logger: logging.Logger, snap: tuple[bool, list[logging.Handler], list[tuple[Any, Any]]]) -> None:
    disabled, handlers, targets = snap
    logger.disabled = disabled
    if not logger.handlers and handlers:  # a config that names the logger and gives it no handler
        for handler in handlers:
            logger.addHandler(handler)
    for handler, target in targets:
        if target is not None and handler.target is None:
            handler.setTarget(target)


def keep_serve_handlers(config_fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a ``dictConfig``-like function so the ``ray.serve`` logger keeps its handlers working.

    Args:
        config_fn: The function to wrap (``logging.config.dictConfig``).

    Returns:
        The wrapper (marked, so wrapping twice returns the first wrapper).
    """
    if getattr(config_fn, _MARK, False):
        return config_fn

    @functools.wraps(config_fn)
    def dict_config(config: Any) -> None:
        logger = logging.getLogger(SERVE_LOGGER)
        snap = _snapshot(logger)
        try:
            config_fn(config)
        finally:
            _restore(logger, snap)

    setattr(dict_config, _MARK, True)
    return dict_config


def protect_serve_logging() -> None:
    """Ray ``worker_process_setup_hook``: install :func:`keep_serve_handlers` around ``dictConfig``.

    Idempotent. Runs in every worker process started for a deployment that names it.
    """
    logging.config.dictConfig = keep_serve_handlers(logging.config.dictConfig)  # type: ignore[assignment]
