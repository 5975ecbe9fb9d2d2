"""A/B comparison of two endpoints under the same workload, interleaved in one run.

Fair design (default ``rounds``): the workload is cut into R rounds; each round's requests go to both
endpoints with the same arrival schedule, one endpoint after the other, in ABBA order (A,B then B,A ...).
The endpoints never load each other (they often share the machine: the stack and a raw ``vllm serve`` on
the same GPU or the same cores), each sees identical prompts and arrival gaps, and ABBA cancels slow drift
(warming caches, thermal, noisy neighbours) to first order. The per-round ratios give a spread.
``concurrent`` offers both endpoints the same schedule at the same time (for endpoints on separate
hardware). Ratios are A / B (A is the candidate, B the baseline); deltas are A - B in ms.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from loadtest.client import ClientOptions, RequestRecord
from loadtest.metrics import compute_metrics, pword
from loadtest.runner import LoadConfig, RunResult, make_session, run_load
from loadtest.workloads.base import Conversation

logger = logging.getLogger(__name__)

RATIO_KEYS = ("request_throughput", "output_throughput", "total_token_throughput", "request_goodput")


def delta_keys(percentiles: Sequence[float]) -> list[str]:
    """Latency keys compared by difference: TTFT and ITL (and TPOT, E2EL) median and percentiles."""
    keys = []
    for m in ("ttft", "itl", "tpot", "e2el"):
        keys += [f"median_{m}_ms"] + [f"p{pword(p)}_{m}_ms" for p in percentiles if p != 50]
    return keys


def comparison(a: dict[str, Any], b: dict[str, Any], percentiles: Sequence[float]) -> dict[str, Any]:
    """Ratios (A / B) of throughputs and deltas (A - B) of latencies, plus latency ratios."""
    ratios = {k: (a[k] / b[k]) if a.get(k) is not None and b.get(k) else None for k in RATIO_KEYS}
    deltas = {k: a[k] - b[k] for k in delta_keys(percentiles)}
    lat_ratios = {k: (a[k] / b[k]) if b[k] else None for k in delta_keys(percentiles)}
    return {"ratios": ratios, "deltas_ms": deltas, "latency_ratios": lat_ratios}


async def _rounds(
    opts: dict[str, ClientOptions],
    convs: Sequence[Conversation],
    load: LoadConfig,
    rounds: int,
    pbar: tqdm | None,
) -> tuple[dict[str, list[RequestRecord]], dict[str, float], list[float]]:
    chunks = [list(c) for c in np.array_split(np.arange(len(convs)), rounds) if len(c)]
    records: dict[str, list[RequestRecord]] = {k: [] for k in opts}
    durations = dict.fromkeys(opts, 0.0)
    per_round: list[float] = []
    labels = list(opts)
    async with make_session(None, max(o.timeout_s for o in opts.values())) as session:
        for r, idx in enumerate(chunks):
            sub = [convs[i] for i in idx]
            round_load = load.model_copy(update={"seed": load.seed + r})
            tput = {}
            for label in labels if r % 2 == 0 else labels[::-1]:
                res = await run_load(session, opts[label], sub, round_load, label, pbar, warmup=(r == 0))
                records[label] += res.records
                durations[label] += res.duration_s
                tput[label] = sum(x.output_tokens for x in res.records if x.success) / max(
                    res.duration_s, 1e-9
                )
            if tput[labels[1]]:
                per_round.append(tput[labels[0]] / tput[labels[1]])
    return records, durations, per_round


async def _concurrent(
    opts: dict[str, ClientOptions], convs: Sequence[Conversation], load: LoadConfig, pbar: tqdm | None
) -> tuple[dict[str, list[RequestRecord]], dict[str, float]]:
    async with make_session(None, max(o.timeout_s for o in opts.values())) as session:
        results: list[RunResult] = await asyncio.gather(
            *(run_load(session, o, convs, load, label, pbar) for label, o in opts.items())
        )
    return (
        {k: r.records for k, r in zip(opts, results, strict=False)},
        {k: r.duration_s for k, r in zip(opts, results, strict=False)},
    )


async def run_compare(
    a: ClientOptions,
    b: ClientOptions,
    convs: Sequence[Conversation],
    load: LoadConfig,
    mode: Literal["rounds", "concurrent"] = "rounds",
    rounds: int = 4,
    percentiles: Sequence[float] = (50, 99),
    goodput: dict[str, float] | None = None,
    labels: tuple[str, str] = ("A", "B"),
) -> tuple[dict[str, Any], dict[str, list[RequestRecord]]]:
    """Run the comparison and return (result dict, records by label).

    Args:
        a: Candidate endpoint (e.g. the stack).
        b: Baseline endpoint (e.g. raw ``vllm serve``).
        convs: The workload (both endpoints get all of it).
        load: Arrivals and concurrency, applied to each endpoint separately.
        mode: "rounds" (ABBA interleaving) or "concurrent".
        rounds: Number of rounds in "rounds" mode (clipped to the workload size).
        percentiles: Percentiles to report.
        goodput: Optional SLOs (ms).
        labels: Names of A and B in the output.
    """
    if load.duration_s is not None:
        raise ValueError("compare runs by count: drop --duration")
    opts = {labels[0]: a, labels[1]: b}
    total = 2 * sum(len(c.turns) for c in convs)
    per_round: list[float] = []
    with tqdm(total=total, disable=load.disable_tqdm, desc="compare", unit="req") as pbar:
        if mode == "rounds":
            records, durations, per_round = await _rounds(
                opts, convs, load, max(1, min(rounds, len(convs))), pbar
            )
        else:
            records, durations = await _concurrent(opts, convs, load, pbar)
    metrics = {k: compute_metrics(records[k], durations[k], percentiles, goodput) for k in opts}
    for k, o in opts.items():
        metrics[k].update({"base_url": o.base_url, "model_id": o.model})
    out: dict[str, Any] = {
        "mode": mode,
        "labels": list(labels),
        "request_rate": "inf" if math.isinf(load.request_rate) else load.request_rate,
        "max_concurrency": load.max_concurrency,
        "percentiles": list(percentiles),
        "endpoints": metrics,
        **comparison(metrics[labels[0]], metrics[labels[1]], percentiles),
    }
    if per_round:
        out["per_round_output_throughput_ratio"] = per_round
        out["output_throughput_ratio_spread"] = {
            "min": min(per_round),
            "max": max(per_round),
            "cv": float(np.std(per_round) / np.mean(per_round)),
        }
    return out, records


def compare_table(res: dict[str, Any]) -> str:
    """Console table: both endpoints side by side, then ratios and deltas."""
    la, lb = res["labels"]
    a, b = res["endpoints"][la], res["endpoints"][lb]
    lines = ["{s:{c}^{n}}".format(s=f" Compare {la} vs {lb} ({res['mode']}) ", n=78, c="=")]
    lines.append(f"{'metric':<30}{la[:14]:>14}{lb[:14]:>14}{'A/B':>10}{'A-B':>10}")
    for k in RATIO_KEYS:
        if a.get(k) is None:
            continue
        r = res["ratios"].get(k)
        lines.append(f"{k:<30}{a[k]:>14.2f}{b[k]:>14.2f}{(f'{r:.3f}x' if r else '-'):>10}{'':>10}")
    for k, d in res["deltas_ms"].items():
        r = res["latency_ratios"].get(k)
        lines.append(f"{k:<30}{a[k]:>14.2f}{b[k]:>14.2f}{(f'{r:.3f}x' if r else '-'):>10}{d:>+10.2f}")
    lines.append(
        f"{'completed / failed':<30}{a['completed']:>9}/{a['failed']:<4}{b['completed']:>9}/{b['failed']:<4}"
    )
    if "output_throughput_ratio_spread" in res:
        s = res["output_throughput_ratio_spread"]
        lines.append(f"per-round output tok/s ratio: min {s['min']:.3f} max {s['max']:.3f} cv {s['cv']:.3f}")
    lines.append("=" * 78)
    return "\n".join(lines)
