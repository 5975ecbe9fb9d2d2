"""Benchmark: the router alone, over FAKE engines: requests/s per router core and added latency.

Three processes on this machine: a FAKE OpenAI engine (``loadtest.fake_server``, zero TTFT, 1-token
answers), the router (``serve.router.app.create_app`` over a ``StaticRegistry`` pointing at the fake, served
by uvicorn with uvloop + httptools, like Ray Serve's direct ingress), and ``wrk`` (C) as the load generator.

- Capacity: wrk closed loop at several connection counts against the router; the router process's own CPU
  seconds (psutil) divide the requests it served: **requests/s per router core**. Request kinds:
  chat with an explicit model (no classification), chat with ``model: auto`` (classification + policy), and
  the same two on the Responses API (``/v1/responses``). Kinds are interleaved over ``--rounds`` (ABBA) so a
  noisy shared machine affects them alike; the best of each is reported, with the Responses/chat ratios.
- Added latency: one connection (no queueing) against the fake directly and through the router, same body;
  the difference of wrk's latency percentiles is what the router adds.

Writes ``bench/results/router_only.json`` and ``.md``. Needs ``wrk`` (Debian package ``wrk``).
Run: ``.venv/bin/python bench/router_only/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

_ROUTER = """
import sys, uvicorn
from serve.config import FleetConfig
from serve.router.app import create_app
from serve.router.upstream import StaticRegistry
fake = sys.argv[2]
fleet = FleetConfig.from_dict({
    "name": "router-bench",
    "deployments": [{"name": n, "tiny": "qwen3", "model_path": "/nonexistent/" + n, "accelerator": {"type": "cpu"},
                     "engine": {"max_model_len": 4096}, "max_ongoing_requests": 100000,
                     "max_queued_requests": 100000} for n in ("general", "coder")],
    "router": {"tasks": {"general": {"candidates": ["general"]}, "code": {"candidates": ["coder", "general"]},
                         "math": {"candidates": ["general"]}, "reasoning": {"candidates": ["general"]}}},
}, check_paths=False)
app = create_app(fleet, StaticRegistry({"general": [fake], "coder": [fake]}))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            loop="uvloop", http="httptools")
"""

_FAKE = """
import sys, uvicorn
from loadtest.fake_server import create_app
app = create_app(ttft_s=0.0, tokens_per_s=1e6, models=["general", "coder"], task_headers=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            loop="uvloop", http="httptools")
"""

_CODE = "Write a Python function that merges two sorted lists, with a docstring and tests."
#: kind -> (path, body).
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "explicit": ("/v1/chat/completions", {"model": "general", "max_tokens": 1,
                                          "messages": [{"role": "user", "content": "Hello, how are you today?"}]}),
    "auto": ("/v1/chat/completions", {"model": "auto", "max_tokens": 1,
                                      "messages": [{"role": "user", "content": _CODE}]}),
    "responses-explicit": ("/v1/responses", {"model": "general", "max_output_tokens": 1, "store": False,
                                             "input": "Hello, how are you today?"}),
    "responses-auto": ("/v1/responses", {"model": "auto", "max_output_tokens": 1, "store": False,
                                         "input": _CODE}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(code: str, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([PY, "-c", code, str(port), *extra], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    raise SystemExit(f"server on :{port} did not start")


def wrk(url: str, path: str, body: dict[str, Any], connections: int, seconds: int) -> dict[str, float]:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(json.dumps(body))}\n")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          url + path], capture_output=True, text=True, check=True).stdout
    res: dict[str, float] = {"requests": float(re.search(r"(\d+) requests in", out).group(1))}  # type: ignore[union-attr]
    res["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            res[f"p{pct}_ms"] = float(m.group(1)) * scale
    return res


def cpu_seconds(pid: int) -> float:
    p = psutil.Process(pid)
    t = p.cpu_times()
    return float(t.user + t.system)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", default="4,16,64")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the request kinds")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "router_only"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    fake_port, router_port = free_port(), free_port()
    fake = start(_FAKE, fake_port, [])
    router = start(_ROUTER, router_port, [f"http://127.0.0.1:{fake_port}"])
    fake_url, router_url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{router_port}"
    results: dict[str, Any] = {"capacity": {}, "added_latency": {}}
    try:
        for path, body in BODIES.values():
            wrk(router_url, path, body, 4, 2)  # warm-up (caches, pools, tokenizer)
        for rnd in range(args.rounds):
            kinds = list(BODIES) if rnd % 2 == 0 else list(reversed(BODIES))  # ABBA over the kinds
            for kind in kinds:
                path, body = BODIES[kind]
                for c in (int(x) for x in args.connections.split(",")):
                    before = cpu_seconds(router.pid)
                    r = wrk(router_url, path, body, c, args.seconds)
                    used = cpu_seconds(router.pid) - before
                    r["router_cpu_s"] = used
                    r["rps_per_router_core"] = r["requests"] / used if used > 0 else 0.0
                    results["capacity"][f"{kind}-r{rnd}-c{c}"] = r
                    print(f"{kind:18s} round {rnd} c={c:3d}: {r['rps']:7.0f} req/s, router CPU {used:5.2f}s -> "
                          f"{r['rps_per_router_core']:7.0f} req/s per router core, non-2xx {r['non_2xx']:.0f}",
                          flush=True)
        for kind, (path, body) in BODIES.items():
            direct = wrk(fake_url, path, body, 1, args.seconds)
            via = wrk(router_url, path, body, 1, args.seconds)
            added = {p: via[p] - direct[p] for p in ("p50_ms", "p90_ms", "p99_ms") if p in via and p in direct}
            results["added_latency"][kind] = {"direct": direct, "via_router": via, "added_ms": added}
            print(f"{kind:18s} added latency (1 connection): " +
                  ", ".join(f"{k} {v:+.2f} ms" for k, v in added.items()), flush=True)
    finally:
        for proc in (router, fake):
            os.killpg(proc.pid, signal.SIGTERM)
    best = {k: max(v["rps_per_router_core"] for n, v in results["capacity"].items() if n.startswith(k + "-r"))
            for k in BODIES}
    results["best_rps_per_router_core"] = best
    ratios = {"responses/chat explicit": best["responses-explicit"] / best["explicit"],
              "responses/chat auto": best["responses-auto"] / best["auto"]}
    results["ratios"] = ratios
    results["meta"] = {"cores": os.cpu_count(), "loadavg": os.getloadavg(),
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": args.seconds}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    lines = ["# Router alone over a FAKE engine", "",
             "| request | best req/s per router core | added p50 (ms) | added p99 (ms) |", "|---|---|---|---|"]
    for k in BODIES:
        a = results["added_latency"][k]["added_ms"]
        lines.append(f"| {k} | {best[k]:.0f} | {a.get('p50_ms', float('nan')):+.2f} | "
                     f"{a.get('p99_ms', float('nan')):+.2f} |")
    lines += ["", "Ratios (same run): " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()) + "."]
    lines += ["", f"Goal: >= 2,000 req/s per core. wrk closed loop, {args.seconds}s per point; router CPU from "
              f"psutil. Load average at the end: {os.getloadavg()[0]:.1f} (shared 2-core machine).", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
