"""Benchmark: the router alone, over FAKE engines: requests/s per router core and added latency.

Three processes on this machine: a FAKE OpenAI engine (``loadtest.fake_server``, zero TTFT, 1-token
answers), the router (``serve.router.app.create_app`` over a ``StaticRegistry`` pointing at the fake, served
by uvicorn with uvloop + httptools, like Ray Serve's direct ingress), and ``wrk`` (C) as the load generator.

- Prompts: every request kind cycles through the same :data:`N_PROMPTS` varied prompts (the text-only
  conversations of ``bench/route_eval/holdout4.jsonl``, the blind route-eval set: many languages, tasks and
  lengths), so neither the explicit nor the ``auto`` figure comes from one repeated body.
- Capacity: wrk closed loop at several connection counts against the router; the router process's own CPU
  seconds (psutil) divide the requests it served: **requests/s per router core**. Request kinds:
  chat with an explicit model (no classification), chat with ``model: auto`` (classification + policy), and
  the same two on the Responses API (``/v1/responses``). Kinds are interleaved over ``--rounds`` (ABBA) so a
  noisy shared machine affects them alike; the best of each is reported, with the Responses/chat ratios.
- ``--base REF``: also start the router of git revision ``REF`` (a temporary ``git worktree``, same venv,
  same fake engine) and measure it in ABBA alternation with this checkout's router in the same run, so the
  branch/base ratios are trustworthy on a noisy machine.
- Added latency: one connection (no queueing) against the fake directly and through the router, same bodies;
  the difference of wrk's latency percentiles is what the router adds.

Writes ``bench/results/router_only.json`` and ``.md``. Needs ``wrk`` (Debian package ``wrk``).
Run: ``.venv/bin/python bench/router_only/run.py [--base efb136e]``.
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
HOLDOUT = ROOT / "bench" / "route_eval" / "holdout4.jsonl"
N_PROMPTS = 300

_ROUTER = """
import sys, uvicorn
import serve
print("router code:", serve.__file__, file=sys.stderr, flush=True)
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
# As in the stack: Ray Serve collects and freezes a replica's start-up heap (RAY_SERVE_FREEZE_GC_ON_STARTUP), so a
# full collection never walks the ~590k start-up objects (one such walk stalled every request here for ~0.3 s).
import gc
gc.collect()
gc.freeze()
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


def prompts(n: int = N_PROMPTS) -> list[list[dict[str, Any]]]:
    """The first ``n`` text-only conversations of the blind route-eval set (message lists)."""
    out: list[list[dict[str, Any]]] = []
    for line in HOLDOUT.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        msgs = json.loads(line).get("messages")
        if msgs and all(isinstance(m.get("content"), str) for m in msgs):
            out.append(msgs)
    return out[:n]


def bodies(kind: str, convs: list[list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    """The path and request bodies of one request kind, one body per conversation."""
    model = "auto" if kind.endswith("auto") else "general"
    if kind.startswith("responses"):
        return "/v1/responses", [{"model": model, "max_output_tokens": 1, "store": False, "input": c}
                                 for c in convs]
    return "/v1/chat/completions", [{"model": model, "max_tokens": 1, "messages": c} for c in convs]


KINDS = ("explicit", "auto", "responses-explicit", "responses-auto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(code: str, port: int, extra: list[str], cwd: Path = ROOT, log: Path | None = None,
          ) -> subprocess.Popen[bytes]:
    """Start a server process (code in ``cwd``, which comes first on ``sys.path``) and wait for its port."""
    err = log.open("wb") if log is not None else subprocess.DEVNULL
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    proc = subprocess.Popen([PY, "-c", code, str(port), *extra], cwd=cwd, start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"server on :{port} did not start" + (f" (see {log})" if log else ""))


def lua_script(items: list[dict[str, Any]]) -> Path:
    """A wrk script that POSTs ``items`` round-robin."""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', "local bodies = {"]
    lines += [f"  {json.dumps(json.dumps(b))}," for b in items]
    lines += ["}", "local i = math.random(#bodies) - 1",
              "request = function()", "  i = i % #bodies + 1",
              "  return wrk.format(nil, nil, nil, bodies[i])", "end", ""]
    script.write_text("\n".join(lines), encoding="utf-8")
    return script


def wrk(url: str, path: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
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
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def base_checkout(ref: str) -> Path:
    """A temporary detached worktree of ``ref`` (removed by :func:`drop_checkout`)."""
    where = Path(tempfile.mkdtemp(prefix="router-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref], check=True,
                   capture_output=True)
    return where


def drop_checkout(where: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)


def measure(routers: dict[str, tuple[str, int]], scripts: dict[str, tuple[str, Path]], conns: list[int],
            rounds: int, seconds: int) -> dict[str, dict[str, float]]:
    """Capacity points: every (router, kind, round, connections), ABBA over kinds and routers."""
    points: dict[str, dict[str, float]] = {}
    names = list(routers)
    for rnd in range(rounds):
        kinds = list(scripts) if rnd % 2 == 0 else list(reversed(scripts))
        for k_i, kind in enumerate(kinds):
            path, script = scripts[kind]
            order = names if (rnd + k_i) % 2 == 0 else list(reversed(names))
            for c in conns:
                for name in order:
                    url, pid = routers[name]
                    before = cpu_seconds(pid)
                    r = wrk(url, path, script, c, seconds)
                    used = cpu_seconds(pid) - before
                    r["router_cpu_s"] = used
                    r["rps_per_router_core"] = r["requests"] / used if used > 0 else 0.0
                    points[f"{name}:{kind}-r{rnd}-c{c}"] = r
                    print(f"{name:6s} {kind:18s} round {rnd} c={c:3d}: {r['rps']:7.0f} req/s, router CPU "
                          f"{used:5.2f}s -> {r['rps_per_router_core']:7.0f} req/s per router core, "
                          f"non-2xx {r['non_2xx']:.0f}", flush=True)
    return points


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", default="4,16,64")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the request kinds")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--base", default=None, help="git revision whose router runs alongside (ABBA), e.g. efb136e")
    ap.add_argument("--no-latency", action="store_true", help="skip the one-connection added-latency runs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "router_only"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    convs = prompts()
    kinds = [k for k in args.kinds.split(",") if k]
    scripts = {k: (bodies(k, convs)[0], lua_script(bodies(k, convs)[1])) for k in kinds}
    logs = Path(tempfile.mkdtemp(prefix="router-bench-"))
    fake_port = free_port()
    procs = [start(_FAKE, fake_port, [])]
    fake_url = f"http://127.0.0.1:{fake_port}"
    trees = {"branch": ROOT}
    base_tree = base_checkout(args.base) if args.base else None
    if base_tree is not None:
        trees["base"] = base_tree
    routers: dict[str, tuple[str, int]] = {}
    results: dict[str, Any] = {"capacity": {}, "added_latency": {}}
    try:
        for name, tree in trees.items():
            port = free_port()
            proc = start(_ROUTER, port, [fake_url], cwd=tree, log=logs / f"{name}.log")
            procs.append(proc)
            routers[name] = (f"http://127.0.0.1:{port}", proc.pid)
            for kind in kinds:  # warm-up (caches, pools, tokenizer) and a check that every kind is served
                path, script = scripts[kind]
                w = wrk(routers[name][0], path, script, 4, 2)
                if w["non_2xx"]:
                    raise SystemExit(f"{name} router answered {w['non_2xx']:.0f} non-2xx for {kind}")
        conns = [int(x) for x in args.connections.split(",")]
        results["capacity"] = measure(routers, scripts, conns, args.rounds, args.seconds)
        if not args.no_latency:
            for kind in kinds:
                path, script = scripts[kind]
                direct = wrk(fake_url, path, script, 1, args.seconds)
                for name, (url, _) in routers.items():
                    via = wrk(url, path, script, 1, args.seconds)
                    added = {p: via[p] - direct[p] for p in ("p50_ms", "p90_ms", "p99_ms") if p in via and p in direct}
                    results["added_latency"][f"{name}:{kind}"] = {"direct": direct, "via_router": via,
                                                                  "added_ms": added}
                    print(f"{name:6s} {kind:18s} added latency (1 connection): " +
                          ", ".join(f"{k} {v:+.2f} ms" for k, v in added.items()), flush=True)
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        if base_tree is not None:
            drop_checkout(base_tree)
    write(results, args, kinds, list(routers), len(convs))
    return 0


def write(results: dict[str, Any], args: argparse.Namespace, kinds: list[str], names: list[str],
          n_prompts: int) -> None:
    """Summarise (best per router and kind, ratios) and write the JSON and markdown reports."""
    cap = results["capacity"]
    best = {f"{n}:{k}": max(v["rps_per_router_core"] for p, v in cap.items() if p.startswith(f"{n}:{k}-r"))
            for n in names for k in kinds}
    results["best_rps_per_router_core"] = best
    ratios: dict[str, float] = {}
    for n in names:
        if {"explicit", "auto"} <= set(kinds):
            ratios[f"{n}: auto/explicit"] = best[f"{n}:auto"] / best[f"{n}:explicit"]
        if {"responses-explicit", "responses-auto"} <= set(kinds):
            ratios[f"{n}: responses auto/explicit"] = best[f"{n}:responses-auto"] / best[f"{n}:responses-explicit"]
    if "base" in names:
        for k in kinds:
            ratios[f"branch/base {k}"] = best[f"branch:{k}"] / best[f"base:{k}"]
    results["ratios"] = ratios
    results["meta"] = {"cores": os.cpu_count(), "loadavg": os.getloadavg(), "prompts": n_prompts,
                       "base": args.base, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "seconds": args.seconds, "connections": args.connections, "rounds": args.rounds}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    lines = ["# Router alone over a FAKE engine", "",
             "| router | request | best req/s per router core | added p50 (ms) | added p99 (ms) |",
             "|---|---|---|---|---|"]
    for n in names:
        label = n if n == "branch" else f"base ({args.base})"
        for k in kinds:
            a = results["added_latency"].get(f"{n}:{k}", {}).get("added_ms", {})
            lines.append(f"| {label} | {k} | {best[f'{n}:{k}']:.0f} | {a.get('p50_ms', float('nan')):+.2f} | "
                         f"{a.get('p99_ms', float('nan')):+.2f} |")
    lines += ["", "Ratios (same run): " + ", ".join(f"{k} {v:.3f}x" for k, v in ratios.items()) + "."]
    lines += ["", f"Goal: >= 2,000 req/s per core. {n_prompts} varied prompts (route-eval holdout4, text only) for "
              f"every kind; wrk closed loop, {args.seconds}s per point, connections {args.connections}, "
              f"{args.rounds} ABBA rounds; router CPU from psutil. Load average at the end: "
              f"{os.getloadavg()[0]:.1f} (shared {os.cpu_count()}-core machine).", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
