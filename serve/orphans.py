"""Reap vLLM engine processes orphaned by a killed engine replica.

vLLM runs each engine in child processes (``VLLM::EngineCore`` and its ``VLLM::Worker``). When the Ray replica
that owns them is killed (SIGKILL, OOM killer, ``ray stop --force``), nothing tells the children, and they
stay alive re-parented to init, holding gigabytes of RAM and spinning CPU threads. A new replica of the same
deployment (and ``qwen-serve down``) reaps them: a ``VLLM::*`` process whose parent is init has, by
definition, lost its owner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

logger = logging.getLogger(__name__)

#: Process-name prefixes of what an engine replica owns: vLLM's engine processes and the replica's frontends
#: (``serve.frontends``; they normally exit with the replica through PR_SET_PDEATHSIG).
_OWNED = ("VLLM::", "qwen-frontend")


def orphan_engine_pids() -> list[int]:
    """PIDs of ``VLLM::*`` and ``qwen-frontend*`` processes of this user whose parent is init (pid 1)."""
    import psutil

    uid = os.getuid()
    out = []
    for p in psutil.process_iter(["pid", "ppid", "name", "uids"]):
        try:
            if p.info["ppid"] == 1 and (p.info["name"] or "").startswith(_OWNED) and p.info["uids"].real == uid:
                out.append(int(p.info["pid"]))
        except (psutil.Error, AttributeError):
            continue
    return out


def reap_orphan_engines(grace_s: float = 3.0) -> int:
    """Terminate orphaned vLLM engine processes and their children; returns how many were reaped."""
    import psutil

    victims: list[psutil.Process] = []
    for pid in orphan_engine_pids():
        try:
            proc = psutil.Process(pid)
            victims.extend([proc, *proc.children(recursive=True)])
        except psutil.Error:
            continue
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(victims, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    if victims:
        logger.warning("reaped %d orphaned vLLM engine process(es)", len(victims))
        time.sleep(0.2)
    return len(victims)
