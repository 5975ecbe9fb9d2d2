"""CPU use of every serving process over time: which one saturates a core, and when.

``procs.py`` gives CPU seconds over a whole measurement; in an ABBA compare the two servers take turns, so a
process that is pegged at one core while its side runs shows up there as half a core. This samples every
process each second:

- ``cpumon.py run OUT.jsonl``: until killed, one line per second ``{"t": time, "cpu": {pid: cpu_seconds}}``
  for processes of the serving paths (Python, Ray, vLLM, the frontends), and ``{"pid": pid, "title": ...}``
  once per new process.
- ``cpumon.py summarize IN.jsonl OUT.json [WINDOW_S]``: per process, CPU seconds, the busiest ``WINDOW_S``
  (default 10 s) window in cores, and the mean cores over the seconds it was busy (>= 0.05 core).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

MATCH = ("python", "ray::", "VLLM::", "qwen-frontend", "vllm")


def _title(p: psutil.Process) -> str | None:
    try:
        cmd = " ".join(p.cmdline()) or p.name()
    except psutil.Error:
        return None
    return cmd[:160] if any(m in cmd for m in MATCH) else None


def run(out: Path, period_s: float = 1.0) -> None:
    """Sample until killed (SIGTERM/SIGINT end it cleanly)."""
    titles: dict[int, str | None] = {}
    with out.open("a") as f:
        while True:
            t = time.time()
            cpu: dict[str, float] = {}
            for p in psutil.process_iter():
                pid = p.pid
                if pid not in titles:
                    titles[pid] = _title(p)
                    if titles[pid]:
                        f.write(json.dumps({"pid": pid, "title": titles[pid]}) + "\n")
                if not titles[pid]:
                    continue
                try:
                    ct = p.cpu_times()
                except psutil.Error:
                    continue
                cpu[str(pid)] = round(ct.user + ct.system, 3)
            f.write(json.dumps({"t": round(t, 3), "cpu": cpu}) + "\n")
            f.flush()
            time.sleep(max(0.0, period_s - (time.time() - t)))


def summarize(path: Path, window_s: float = 10.0) -> dict[str, Any]:
    """Per process: CPU seconds, busiest window (cores), mean cores while busy."""
    titles: dict[str, str] = {}
    samples: list[tuple[float, dict[str, float]]] = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "pid" in rec:
            titles[str(rec["pid"])] = rec["title"]
        else:
            samples.append((rec["t"], rec["cpu"]))
    rows = []
    for pid, title in titles.items():
        series = [(t, c[pid]) for t, c in samples if pid in c]
        if len(series) < 2:
            continue
        total = series[-1][1] - series[0][1]
        if total < 0.5:
            continue
        rates = [(b[1] - a[1]) / max(b[0] - a[0], 1e-9) for a, b in zip(series, series[1:], strict=False)]
        busy = [r for r in rates if r >= 0.05]
        n = max(1, int(round(window_s)))
        peak = max((sum(rates[i:i + n]) / n for i in range(max(1, len(rates) - n + 1))), default=0.0)
        rows.append({"pid": int(pid), "title": title, "cpu_s": round(total, 1), "peak_cores": round(peak, 3),
                     "busy_mean_cores": round(sum(busy) / len(busy), 3) if busy else 0.0,
                     "busy_s": len(busy)})
    rows.sort(key=lambda r: -r["cpu_s"])
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    return {"span_s": round(span, 1), "window_s": window_s, "processes": rows}


def main(argv: list[str]) -> int:
    """CLI: ``run OUT`` or ``summarize IN OUT [WINDOW_S]``."""
    if len(argv) == 2 and argv[0] == "run":
        with contextlib.suppress(KeyboardInterrupt):
            run(Path(argv[1]))
        return 0
    if len(argv) in (3, 4) and argv[0] == "summarize":
        res = summarize(Path(argv[1]), float(argv[3]) if len(argv) == 4 else 10.0)
        Path(argv[2]).write_text(json.dumps(res, indent=1))
        for r in res["processes"][:20]:
            sys.stdout.write(f"  {r['cpu_s']:8.1f} s  peak {r['peak_cores']:5.2f}  busy-mean {r['busy_mean_cores']:5.2f}"
                             f"  {r['title'][:80]}\n")
        return 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
