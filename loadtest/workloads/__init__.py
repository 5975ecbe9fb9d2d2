"""Workload generators. :func:`build_workload` turns a :class:`WorkloadConfig` into conversations."""

from __future__ import annotations

from collections.abc import Callable

from loadtest.workloads.base import TASKS, Conversation, LengthDist, Turn
from loadtest.workloads.config import DatasetName, WorkloadConfig
from loadtest.workloads.sharegpt import sharegpt_workload
from loadtest.workloads.synthetic import multi_turn_workload, random_workload, shared_prefix_workload
from loadtest.workloads.task_mix import png_data_url, task_mix_workload

GENERATORS: dict[str, Callable[[WorkloadConfig], list[Conversation]]] = {
    "random": random_workload,
    "sharegpt": sharegpt_workload,
    "task-mix": task_mix_workload,
    "shared-prefix": shared_prefix_workload,
    "multi-turn": multi_turn_workload,
}


def build_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """Generate the conversations described by ``cfg`` (deterministic for a given seed)."""
    return GENERATORS[cfg.dataset](cfg)


__all__ = [
    "GENERATORS",
    "TASKS",
    "Conversation",
    "DatasetName",
    "LengthDist",
    "Turn",
    "WorkloadConfig",
    "build_workload",
    "png_data_url",
]
