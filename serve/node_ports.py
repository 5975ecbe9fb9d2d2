"""Per-engine port windows on a node, so engines that start together never pick the same port.

vLLM 0.26's Ray executor (``RayExecutorV2``, which Ray Serve LLM uses on GPUs) chooses the torch.distributed
TCPStore port of a non-data-parallel engine by probing from ``data_parallel_master_port + 100``, and the
master port is 0 unless data parallelism is configured: every engine of a node probes port 100 first. Engines
that start at the same time all find it free, then all but one fail to bind it (``EADDRINUSE``), their
replicas die and Ray Serve starts them again: four 7B replicas on one H200 took 511-560 s instead of about
200 s. vLLM 0.29 binds that store on port 0 and has no such race.

:func:`reserve_window` gives each engine replica its own window: slot ``k`` of :data:`SLOTS` is held with an
exclusive ``flock`` on a file under the node's temp directory for the replica's lifetime (the kernel releases
it when the process dies, so a crashed replica frees its slot), and the window is
``base + k * WINDOW .. + WINDOW``. The base is ``QWEN_SERVE_ENGINE_PORT_BASE`` (default 20000: above Ray's
worker ports 10002-19999 and below Linux's ephemeral range 32768+).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

#: Ports per engine window (vLLM probes at most 32 for its TCPStore).
WINDOW = 40
#: Windows per node (engines that can start on one node at once).
SLOTS = 64
DEFAULT_BASE = 20000
ENV_BASE = "QWEN_SERVE_ENGINE_PORT_BASE"


@dataclass
class PortWindow:
    """A reserved window: ``first`` .. ``first + WINDOW - 1``, held while ``handle`` stays open.

    Attributes:
        slot: The slot index on this node.
        first: First port of the window.
        handle: The locked file (closing it frees the slot).
    """

    slot: int
    first: int
    handle: IO[bytes] | None

    def release(self) -> None:
        """Free the slot (also happens when the process exits)."""
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
            self.handle = None


def lock_dir() -> Path:
    """Directory of the slot lock files (one per node and user)."""
    return Path(tempfile.gettempdir()) / f"qwen-serve-ports-{os.getuid()}"


def port_base() -> int:
    """First port of slot 0 (``QWEN_SERVE_ENGINE_PORT_BASE``, default :data:`DEFAULT_BASE`)."""
    raw = os.environ.get(ENV_BASE, "")
    try:
        base = int(raw) if raw else DEFAULT_BASE
    except ValueError:
        logger.warning("%s=%r is not a port number; using %d", ENV_BASE, raw, DEFAULT_BASE)
        base = DEFAULT_BASE
    return base


def reserve_window(directory: Path | None = None, slots: int = SLOTS) -> PortWindow | None:
    """Lock the first free slot of this node and return its window (None when every slot is taken).

    Args:
        directory: Where the lock files live (default :func:`lock_dir`).
        slots: Slots to try.
    """
    where = directory or lock_dir()
    where.mkdir(parents=True, exist_ok=True)
    base = port_base()
    for slot in range(slots):
        handle = open(where / f"slot-{slot}.lock", "ab")  # noqa: SIM115 - held open for the replica's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return PortWindow(slot=slot, first=base + slot * WINDOW, handle=handle)
    logger.warning("all %d engine port windows of this node are taken; engine ports are not reserved", slots)
    return None
