"""Capacity at a latency SLO: the most throughput an endpoint sustains with, e.g., TTFT p99 within a bound.

A ratio of throughputs at one stream count mixes two things: how much work each endpoint does and how long
its requests wait. Serving papers and routers (llm-d, SGLang's router, production-stack) therefore report
*capacity at an SLO*: walk the load up, and take the highest throughput whose latency percentile is still
within the SLO. ``qwen-loadtest compare --concurrency-list`` measures both endpoints at each stream count
(ABBA rounds per level) and this module turns the levels into each endpoint's capacity per SLO and the A/B
ratio of capacities; ``--rate-list`` does the same at fixed Poisson request rates (open loop).

Between two measured levels the curve is taken as linear; past the last level within the SLO nothing is
assumed, so a capacity is a lower bound when the top level still meets the SLO (``bounded: false``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The throughput axis.
THROUGHPUT_KEY = "output_throughput"


def capacity(curve: Sequence[tuple[float, float]], slo: float) -> float | None:
    """Highest throughput along ``curve`` with the latency within ``slo``.

    Args:
        curve: ``(throughput, latency)`` per load level, in increasing load order.
        slo: The latency bound, in the curve's latency unit.

    Returns:
        The capacity, or None when even the lightest level misses the SLO. Where the curve crosses the SLO
        between two levels, the crossing is interpolated linearly.
    """
    best: float | None = None
    for i, (tput, lat) in enumerate(curve):
        if lat > slo:
            continue
        best = tput if best is None else max(best, tput)
        if i + 1 < len(curve):
            t1, l1 = curve[i + 1]
            if l1 > slo:  # crosses the SLO on the way to the next level
                best = max(best, tput + (t1 - tput) * (slo - lat) / (l1 - lat))
    return best


def summarize_capacity(
    levels: Sequence[float],
    points: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    slos_ms: Sequence[float],
    axis: str = "streams",
) -> dict[str, Any]:
    """Capacity per label and SLO, and the ratio of the first label's capacity to the second's.

    Args:
        levels: Load levels (stream counts or request rates), one per point, increasing.
        points: label -> per-level metrics (``output_throughput`` and ``metric`` in each).
        metric: The latency key the SLO bounds, e.g. ``p99_ttft_ms``.
        slos_ms: SLO values in ms.
        axis: What the levels are (``streams`` or ``req/s``).

    Returns:
        ``{"metric", "axis", "levels", "curves": {label: [[tok/s, ms], ...]}, "slos": [{"slo_ms", "capacity":
        {label: tok/s | None}, "bounded": {label: bool}, "ratio"}]}``; ``bounded`` is False when the
        highest level still met the SLO (the capacity is then a lower bound).
    """
    labels = list(points)
    curves = {lab: [(float(p[THROUGHPUT_KEY]), float(p[metric])) for p in pts] for lab, pts in points.items()}
    rows = []
    for slo in slos_ms:
        caps = {lab: capacity(c, slo) for lab, c in curves.items()}
        bounded = {lab: bool(c) and c[-1][1] > slo for lab, c in curves.items()}
        a, b = (caps[lab] for lab in labels[:2]) if len(labels) >= 2 else (None, None)
        rows.append({"slo_ms": slo, "capacity": caps, "bounded": bounded,
                     "ratio": a / b if a is not None and b else None})
    return {"metric": metric, "axis": axis, "levels": list(levels), "labels": labels,
            "curves": {lab: [list(x) for x in c] for lab, c in curves.items()}, "slos": rows}


def capacity_table(doc: Mapping[str, Any]) -> str:
    """Markdown: the levels, then capacity per SLO (``>=`` marks a lower bound) and the A/B ratio."""
    labels, metric = doc["labels"], doc["metric"]
    head = " | ".join(f"{lab} tok/s | {lab} {metric}" for lab in labels)
    lines = [f"| {doc.get('axis', 'streams')} | {head} |", "|---|" + "---|---|" * len(labels)]
    for i, n in enumerate(doc["levels"]):
        row = " | ".join(f"{doc['curves'][lab][i][0]:,.0f} | {doc['curves'][lab][i][1]:,.0f}" for lab in labels)
        lines.append(f"| {n:g} | {row} |")
    a_b = f"{labels[0]} / {labels[1]}" if len(labels) >= 2 else "ratio"
    lines += ["", f"| {metric} SLO | " + " | ".join(f"{lab} capacity tok/s" for lab in labels) + f" | {a_b} |",
              "|---|" + "---|" * len(labels) + "---|"]
    for slo in doc["slos"]:
        cells = []
        for lab in labels:
            cap = slo["capacity"][lab]
            cells.append("not met" if cap is None else ("" if slo["bounded"][lab] else ">= ") + f"{cap:,.0f}")
        ratio = "-" if slo["ratio"] is None else f"{slo['ratio']:.2f}x"
        lines.append(f"| {slo['slo_ms']:,.0f} ms | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines) + "\n"

