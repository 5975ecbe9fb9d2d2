"""Chaos bench: hostile input, overload at 2x saturation, replica kill mid-load, cancellation.

Usage::

    QWEN_SERVE_API_KEY=e2e-key-1 .venv/bin/python -m bench.chaos.run --url http://127.0.0.1:8011

Prints the figures of issue 5 and writes ``bench/results/chaos.json`` and ``chaos.md``. The kill and
cancellation parts need the stack on this machine (process ids and Ray's metrics port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.chaos import probes
from bench.chaos.hostile import run_fuzz, run_hand

logger = logging.getLogger("bench.chaos")
RESULTS = Path(__file__).resolve().parents[1] / "results"
GENERAL, CODER = "qwen3-general", "qwen-coder"


def chat(model: str, max_tokens: int, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Tell me about the sea."}],
            "max_tokens": max_tokens, "ignore_eos": True, **kw}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def replicas(url: str, headers: dict[str, str]) -> dict[str, list[str]]:
    snap = httpx.get(url + "/v1/status", headers=headers, timeout=10).json()["endpoints"]
    return {d: sorted(str(e["replica"]) for e in eps) for d, eps in snap.items()}


# --- hostile input ------------------------------------------------------------------------------------
def hostile(url: str, headers: dict[str, str], examples: int) -> dict[str, Any]:
    before = replicas(url, headers)
    statuses: Counter[int] = Counter()
    fivexx: list[tuple[str, int]] = []

    def record(name: str, status: int) -> None:
        statuses[status] += 1
        if status >= 500 or status in (-1, -2):
            fivexx.append((name, status))

    t0 = time.monotonic()
    with httpx.Client(base_url=url, headers={**headers, "x-request-timeout": "20"}, timeout=60) as c:
        n_hand = run_hand(c, record)
    n_fuzz = run_fuzz(url, {**headers, "x-request-timeout": "20"}, examples, record)
    ready = probes.wait_ready(url, 120) < 120
    after = replicas(url, headers)
    deaths = sum(len(set(before.get(d, [])) - set(after.get(d, []))) for d in before)
    return {"cases": n_hand + n_fuzz, "hand_written": n_hand, "fuzzed": n_fuzz,
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "5xx_or_transport_errors": len(fivexx), "failures": fivexx[:20], "engine_deaths": deaths,
            "healthy_after": ready, "seconds": round(time.monotonic() - t0, 1)}


# --- overload -----------------------------------------------------------------------------------------
async def _one(c: httpx.AsyncClient, body: dict[str, Any], out: list[tuple[int, float, bool]]) -> None:
    t0 = time.monotonic()
    try:
        r = await c.post("/v1/chat/completions", json=body)
        out.append((r.status_code, time.monotonic() - t0, "retry-after" in r.headers))
    except httpx.TimeoutException:
        out.append((-1, time.monotonic() - t0, False))
    except httpx.HTTPError:
        out.append((-2, time.monotonic() - t0, False))


async def _closed_loop(url: str, headers: dict[str, str], concurrency: int, seconds: float,
                       body: dict[str, Any]) -> list[tuple[int, float, bool]]:
    out: list[tuple[int, float, bool]] = []
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120,
                                 limits=httpx.Limits(max_connections=1000)) as c:
        async def worker() -> None:
            while time.monotonic() < end:
                await _one(c, body, out)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def _open_loop(url: str, headers: dict[str, str], rate: float, seconds: float,
                     body: dict[str, Any]) -> list[tuple[int, float, bool]]:
    out: list[tuple[int, float, bool]] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120,
                                 limits=httpx.Limits(max_connections=2000)) as c:
        tasks = []
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            tasks.append(asyncio.ensure_future(_one(c, body, out)))
            i += 1
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return out


def overload(url: str, headers: dict[str, str], seconds: float) -> dict[str, Any]:
    body = chat(GENERAL, 16)
    unloaded = asyncio.run(_closed_loop(url, headers, 1, 8, body))
    sat = asyncio.run(_closed_loop(url, headers, 32, 12, body))
    sat_ok = [r for r in sat if r[0] == 200]
    sat_rps = len(sat_ok) / 12
    rate = max(2.0, 2 * sat_rps)
    res = asyncio.run(_open_loop(url, headers, rate, seconds, body))
    codes = Counter(c for c, _, _ in res)
    admitted = [t for c, t, _ in res if c == 200]
    rejected = [(c, ra) for c, _, ra in res if c in (429, 503)]
    rej_lat = [t for c, t, _ in res if c in (429, 503)]
    unl = [t for c, t, _ in unloaded if c == 200]
    return {
        "saturation_rps": round(sat_rps, 2), "offered_rps": round(rate, 2), "requests": len(res),
        "status_counts": {str(k): v for k, v in sorted(codes.items())},
        "rejected_share": round(len(rejected) / max(1, len(res)), 3),
        "rejected_with_retry_after": sum(1 for _, ra in rejected if ra),
        "reject_latency_p99_s": pct(rej_lat, 0.99),
        "admitted_p50_s": pct(admitted, 0.5), "admitted_p99_s": pct(admitted, 0.99),
        "unloaded_p50_s": pct(unl, 0.5), "unloaded_p99_s": pct(unl, 0.99),
        "hung": codes.get(-1, 0), "errors_5xx_other": sum(v for k, v in codes.items() if k >= 500 and k != 503),
    }


# --- replica kill -------------------------------------------------------------------------------------
async def _kill_load(url: str, headers: dict[str, str], victim_url: str,
                     max_s: float) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    stop = asyncio.Event()
    killed_at: list[float] = []

    async def worker(c: httpx.AsyncClient, stream: bool) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            body = chat(CODER, 64, stream=stream)
            ok = False
            status = 0
            try:
                if stream:
                    async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                        data = b"".join([chunk async for chunk in r.aiter_raw()])
                    status = r.status_code
                    ok = status == 200 and b'"error"' not in data
                else:
                    r = await c.post("/v1/chat/completions", json=body)
                    status, ok = r.status_code, r.status_code == 200
            except httpx.TimeoutException:
                status = -1
            except httpx.HTTPError:
                status = -2
            results.append({"t0": t0, "t1": time.monotonic(), "ok": ok, "status": status, "stream": stream})
            if not ok:
                await asyncio.sleep(0.5)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
        tasks = [asyncio.ensure_future(worker(c, i % 2 == 0)) for i in range(4)]
        await asyncio.sleep(4)
        _, children = probes.kill_replica(victim_url)
        killed_at.append(time.monotonic())
        orphans = await asyncio.get_running_loop().run_in_executor(None, probes.reap_orphans, children)
        recovered_at = None
        while time.monotonic() - killed_at[0] < max_s:
            await asyncio.sleep(0.5)
            late_ok = [r for r in results if r["ok"] and r["t0"] > killed_at[0] + 1]
            if late_ok:
                recovered_at = min(r["t1"] for r in late_ok)
                break
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*tasks)
    k = killed_at[0]
    inflight = [r for r in results if r["t0"] < k < r["t1"]]
    failed = [r for r in inflight if not r["ok"]]
    return {"inflight_at_kill": len(inflight), "failed": len(failed),
            "max_time_to_error_s": round(max((r["t1"] - k for r in failed), default=0.0), 2),
            "hung": sum(1 for r in results if r["status"] == -1),
            "failed_after_kill_total": sum(1 for r in results if r["t0"] >= k and not r["ok"]),
            "time_to_recovery_s": None if recovered_at is None else round(recovered_at - k, 1),
            "orphan_processes_killed": orphans, "requests": len(results)}


def replica_kill(url: str, headers: dict[str, str], max_s: float) -> dict[str, Any]:
    snap = httpx.get(url + "/v1/status", headers=headers, timeout=10).json()["endpoints"][CODER]
    victim = str(snap[0]["url"])
    out = asyncio.run(_kill_load(url, headers, victim, max_s))
    out["ready_after_s"] = round(probes.wait_ready(url, 300), 1)
    out["replaced"] = replicas(url, headers).get(CODER) != [str(snap[0]["replica"])]
    return out


# --- cancellation -------------------------------------------------------------------------------------
def _stream_rate(url: str, headers: dict[str, str]) -> float:
    """Single-request decode rate of the coder engine (tokens/s, from streamed chunk times)."""
    times: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c, \
            c.stream("POST", "/v1/chat/completions", json=chat(CODER, 200, stream=True)) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                times.append(time.monotonic())
    return (len(times) - 1) / (times[-1] - times[0])


def _cut(url: str, headers: dict[str, str], stream: bool, hold_s: float) -> tuple[int, float]:
    """Start a long request, leave after ``hold_s``; returns (tokens the client received, seconds held)."""
    body = chat(CODER, 1900, stream=stream)
    got = 0
    t0 = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        if stream:
            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                for line in r.iter_lines():
                    got += line.startswith("data: {") and '"content"' in line
                    if time.monotonic() - t0 >= hold_s:
                        break
        else:
            with contextlib.suppress(httpx.TimeoutException):
                c.post("/v1/chat/completions", json=body, timeout=hold_s)
    return got, time.monotonic() - t0


def cancellation(url: str, headers: dict[str, str], trials: int) -> dict[str, Any]:
    """Disconnect -> engine abort, from the engine's own generated-token counter.

    Ray exports engine metrics only every ~10 s, too coarse to time a sub-second abort directly. The counter
    is exact though: after the export settles, the tokens the engine generated past the point where the
    client left, divided by the engine's decode rate, is the time the engine kept working.
    """
    rate = _stream_rate(url, headers)
    rows = []
    for i in range(trials):
        stream = i % 3 != 2
        before = probes.settled_metric("generation_tokens_total", CODER, settle_s=1.0)
        got, held = _cut(url, headers, stream, 1.0)
        after = probes.settled_metric("generation_tokens_total", CODER)
        generated = after - before
        # streamed: tokens past those the client saw; unary: past what the engine could do while held
        extra = generated - got if stream else generated - rate * held
        rows.append({"stream": stream, "held_s": round(held, 2), "client_tokens": got,
                     "engine_tokens": int(generated), "engine_after_disconnect_s": round(max(0.0, extra) / rate, 2)})
    worst = max(r["engine_after_disconnect_s"] for r in rows)
    return {"decode_rate_tok_s": round(rate, 1), "max_tokens": 1900, "trials": rows,
            "max_disconnect_to_abort_s": worst,
            "method": "engine generation_tokens_total (Ray metrics export) after settle; tokens past the "
                      "disconnect / decode rate; unary counts from request start, so it is an upper bound"}


# --- report -------------------------------------------------------------------------------------------
def write_report(res: dict[str, Any]) -> None:
    """Write chaos.json / chaos.md; parts not run this time are kept from the previous results."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    old = RESULTS / "chaos.json"
    if old.is_file():
        res = {**{k: v for k, v in json.loads(old.read_text()).items() if isinstance(v, dict)}, **res}
    (RESULTS / "chaos.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# Chaos bench (bench/chaos/run.py)", "", f"Stack: {res['url']}, {res['when']}", ""]
    for part, figures in res.items():
        if not isinstance(figures, dict):
            continue
        lines += [f"## {part}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in figures.items()]
        lines.append("")
    (RESULTS / "chaos.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", default=os.environ.get("QWEN_SERVE_API_KEY", ""))
    ap.add_argument("--parts", default="hostile,overload,kill,cancel")
    ap.add_argument("--fuzz-examples", type=int, default=60, help="schemathesis examples per POST operation/mode")
    ap.add_argument("--overload-s", type=float, default=20.0)
    ap.add_argument("--cancel-trials", type=int, default=4)
    ap.add_argument("--recovery-max-s", type=float, default=300.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = args.url.rstrip("/")
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    res: dict[str, Any] = {"url": url, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    parts = args.parts.split(",")
    if "hostile" in parts:
        res["hostile_input"] = hostile(url, headers, args.fuzz_examples)
        print("hostile input:", json.dumps(res["hostile_input"]))  # noqa: T201
    if "overload" in parts:
        res["overload_2x"] = overload(url, headers, args.overload_s)
        print("overload:", json.dumps(res["overload_2x"]))  # noqa: T201
    if "kill" in parts:
        res["replica_kill"] = replica_kill(url, headers, args.recovery_max_s)
        print("replica kill:", json.dumps(res["replica_kill"]))  # noqa: T201
    if "cancel" in parts:
        res["cancellation"] = cancellation(url, headers, args.cancel_trials)
        print("cancellation:", json.dumps(res["cancellation"]))  # noqa: T201
    write_report(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
