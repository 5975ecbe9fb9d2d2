"""CPU seconds per process across a measurement: where the serving path spends host CPU.

``procs.py snap FILE`` records every process's user+system CPU seconds and title; ``procs.py diff A B OUT``
writes the processes that used CPU between the two snapshots (top 25, cores = CPU seconds / wall seconds)
and prints them. Ray names its workers by their role (``ray::ServeReplica:qwen-serve:router``), vLLM its
engine core (``VLLM::EngineCore``), so the table says which part of each stack burned the CPU.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil


def snapshot() -> dict[str, Any]:
    """CPU seconds and a short title of every process (threads summed by the kernel)."""
    procs: dict[str, Any] = {}
    for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        try:
            t = p.info["cpu_times"]
            title = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])[:160]
            procs[str(p.info["pid"])] = {"title": title, "cpu_s": t.user + t.system}
        except (psutil.Error, TypeError, AttributeError):
            continue
    return {"time": time.time(), "procs": procs}


def diff(a: dict[str, Any], b: dict[str, Any], top: int = 25) -> dict[str, Any]:
    """Processes by CPU seconds used between snapshots ``a`` and ``b`` (new processes count from zero)."""
    wall = max(b["time"] - a["time"], 1e-9)
    rows = []
    for pid, rec in b["procs"].items():
        used = rec["cpu_s"] - a["procs"].get(pid, {}).get("cpu_s", 0.0)
        if used > 0.05:
            rows.append({"pid": int(pid), "title": rec["title"], "cpu_s": round(used, 2),
                         "cores": round(used / wall, 3)})
    rows.sort(key=lambda r: -r["cpu_s"])
    return {"wall_s": round(wall, 2), "processes": rows[:top]}


def main(argv: list[str]) -> int:
    """CLI: ``snap FILE`` or ``diff A B OUT``."""
    if len(argv) == 2 and argv[0] == "snap":
        Path(argv[1]).write_text(json.dumps(snapshot()))
        return 0
    if len(argv) == 4 and argv[0] == "diff":
        res = diff(json.loads(Path(argv[1]).read_text()), json.loads(Path(argv[2]).read_text()))
        Path(argv[3]).write_text(json.dumps(res, indent=2))
        sys.stdout.write(f"CPU by process over {res['wall_s']} s:\n")
        for r in res["processes"][:12]:
            sys.stdout.write(f"  {r['cpu_s']:8.1f} s {r['cores']:6.2f} cores  {r['title'][:90]}\n")
        return 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
