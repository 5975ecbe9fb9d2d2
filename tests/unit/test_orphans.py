"""Orphaned vLLM engine processes are found by name + parent and reaped; others are left alone."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from serve.orphans import orphan_engine_pids, reap_orphan_engines

_SPAWN = r"""
import os, subprocess, sys
# a grandchild named VLLM::EngineCore whose parent (this process) exits at once -> re-parented to init
subprocess.Popen([sys.executable, "-c",
    "import ctypes, time; ctypes.CDLL(None).prctl(15, b'VLLM::EngineCore', 0, 0, 0); time.sleep(60)"],
    start_new_session=True)
"""


def _named_children(name: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] == name]


def test_orphaned_engine_is_reaped_and_a_parented_one_is_not() -> None:
    subprocess.run([sys.executable, "-c", _SPAWN], check=True)
    # a "VLLM::EngineCore" that still has its parent (this test process) must survive
    keep = subprocess.Popen([sys.executable, "-c", "import ctypes, time; "
                             "ctypes.CDLL(None).prctl(15, b'VLLM::EngineCore', 0, 0, 0); time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not orphan_engine_pids():
            time.sleep(0.1)
        orphans = orphan_engine_pids()
        assert orphans, "the orphan must be found"
        assert keep.pid not in orphans
        assert reap_orphan_engines(grace_s=2) >= 1
        assert not orphan_engine_pids()
        assert keep.poll() is None, "a process that still has its parent is never touched"
    finally:
        keep.kill()
