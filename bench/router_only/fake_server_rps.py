"""Measure the fake OpenAI server's own ceiling (req/s, and req/s per server core).

Starts ``python -m loadtest.fake_server`` in a subprocess (TTFT 0, very high token rate), drives it
closed-loop with aiohttp from this process, and samples the server process's CPU time, so that
``req/s per server core = req/s / (server CPU seconds / wall seconds)`` is meaningful even when the
client shares the machine. Writes bench/results/fake_server.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from loadtest.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _drive(url: str, body: dict[str, Any], concurrency: int, seconds: float) -> tuple[int, int, float]:
    ok = bad = 0
    stop = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal ok, bad
            while time.perf_counter() < stop:
                async with s.post(url, json=body) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        bad += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, bad, time.perf_counter() - t0


def measure(
    name: str, port: int, body: dict[str, Any], concurrency: int, seconds: float, tps: float = 1e9
) -> dict[str, Any]:
    """Run one scenario against a fresh server; return req/s, server CPU and req/s per server core."""
    cmd = [
        sys.executable,
        "-m",
        "loadtest.fake_server",
        "--port",
        str(port),
        "--ttft-ms",
        "0",
        "--tps",
        str(tps),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ps = psutil.Process(proc.pid)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        deadline = time.monotonic() + 120
        while True:
            try:
                asyncio.run(_drive(url, body, 1, 0.5))  # also warms the server up
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        c0 = sum(ps.cpu_times()[:2])
        ok, bad, wall = asyncio.run(_drive(url, body, concurrency, seconds))
        server_cores = (sum(ps.cpu_times()[:2]) - c0) / wall
    finally:
        proc.terminate()
        proc.wait(10)
    rps = ok / wall
    return {
        "scenario": name,
        "tokens_per_s": tps,
        "concurrency": concurrency,
        "seconds": wall,
        "ok": ok,
        "failed": bad,
        "req_per_s": rps,
        "server_cpu_cores": server_cores,
        "req_per_s_per_server_core": rps / max(server_cores, 1e-9),
    }


def main() -> None:
    """Run the scenarios and write the JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "fake_server.json"))
    a = p.parse_args()
    msgs = [{"role": "user", "content": "hello there"}]
    scenarios = {
        "chat_nonstream_1tok": {"model": "fake-qwen", "messages": msgs, "max_tokens": 1},
        "chat_stream_16tok": {
            "model": "fake-qwen",
            "messages": msgs,
            "max_tokens": 16,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    }
    results = [measure(n, free_port(), b, a.concurrency, a.seconds) for n, b in scenarios.items()]
    # Paced: one write per token (a real engine's pattern) instead of one coalesced write.
    paced = scenarios["chat_stream_16tok"]
    results.append(
        measure("chat_stream_16tok_paced_1000tps", free_port(), paced, 4 * a.concurrency, a.seconds, 1000.0)
    )
    doc = {
        "what": "fake OpenAI server ceiling (loadtest.fake_server, 1 uvicorn worker), closed loop",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "client and server share the machine; per-server-core figure divides by the server's own CPU time",
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "results": results,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2))
    for r in results:
        print(
            f"{r['scenario']:<22} {r['req_per_s']:8.0f} req/s  server {r['server_cpu_cores']:.2f} cores  "
            f"{r['req_per_s_per_server_core']:8.0f} req/s per server core"
        )


if __name__ == "__main__":
    main()
