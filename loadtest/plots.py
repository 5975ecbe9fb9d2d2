"""PNG plots (matplotlib, Agg backend) returned as bytes, for embedding in HTML reports."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loadtest.client import RequestRecord
from loadtest.metrics import tpot_of


def _fig(w: float = 6.4, h: float = 3.6) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h), dpi=90)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def latency_cdfs(groups: Mapping[str, Sequence[RequestRecord]]) -> bytes:
    """CDFs of TTFT, TPOT, ITL and E2EL (ms), one line per group (e.g. endpoint A and B)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), dpi=90)
    for label, recs in groups.items():
        ok = [r for r in recs if r.success]
        series = {
            "TTFT": [(r.ttft or 0) * 1e3 for r in ok],
            "TPOT": [tpot_of(r) * 1e3 for r in ok if r.output_tokens > 1],
            "ITL": [x * 1e3 for r in ok for x in r.itl],
            "E2EL": [r.latency * 1e3 for r in ok],
        }
        for ax, (name, vals) in zip(axes, series.items(), strict=False):
            if vals:
                v = np.sort(np.asarray(vals))
                ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=label or None)
            ax.set_title(f"{name} CDF")
            ax.set_xlabel("ms")
            ax.grid(alpha=0.3)
    if any(groups):
        axes[0].legend()
    return _png(fig)


def timeline(records: Sequence[RequestRecord]) -> bytes:
    """Output tokens per second and in-flight requests over the run, plus TTFT vs in-flight load."""
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.success]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.4), dpi=90)
    if ok:
        t0 = min(r.start for r in ok)
        t1 = max(r.start + r.latency for r in ok)
        n = int(np.ceil(t1 - t0)) + 1
        toks = np.zeros(n)
        for r in ok:
            first = r.start + (r.ttft or 0)
            for x in [first, *(first + np.cumsum(r.itl))]:
                toks[min(n - 1, int(x - t0))] += 1
        starts = np.array([r.start for r in ok])
        ends = starts + np.array([r.latency for r in ok])
        inflight = [(np.sum((starts <= s) & (ends > s))) for s in starts]
        ax1.plot(np.arange(n), toks, label="output chunks/s")
        ax1.set_xlabel("s since start")
        ax1.set_title("Throughput over time")
        ax1.grid(alpha=0.3)
        ax2.scatter(inflight, [(r.ttft or 0) * 1e3 for r in ok], s=6, alpha=0.5)
        ax2.set_xlabel("in-flight requests at send")
        ax2.set_ylabel("TTFT ms")
        ax2.set_title("TTFT vs load")
        ax2.grid(alpha=0.3)
    return _png(fig)


def sweep_curves(points: Sequence[dict[str, Any]], load_key: str) -> bytes:
    """Throughput vs offered load, TTFT/ITL percentiles vs load, and the throughput-latency curve."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), dpi=90)
    x = [p[load_key] for p in points]
    axes[0].plot(x, [p["output_throughput"] for p in points], "o-", label="output tok/s")
    ax0b = axes[0].twinx()
    ax0b.plot(x, [p["request_throughput"] for p in points], "s--", color="tab:orange", label="req/s")
    axes[0].set_xlabel(load_key)
    axes[0].set_title("Throughput vs load")
    for key, style in (
        ("median_ttft_ms", "o-"),
        ("p99_ttft_ms", "o--"),
        ("median_itl_ms", "s-"),
        ("p99_itl_ms", "s--"),
    ):
        if key in points[0]:
            axes[1].plot(x, [p[key] for p in points], style, label=key)
    axes[1].set_xlabel(load_key)
    axes[1].set_ylabel("ms")
    axes[1].set_title("TTFT / ITL vs load")
    axes[1].legend(fontsize=7)
    axes[2].plot([p["output_throughput"] for p in points], [p["median_e2el_ms"] for p in points], "o-")
    axes[2].set_xlabel("output tok/s")
    axes[2].set_ylabel("median E2EL ms")
    axes[2].set_title("Throughput-latency curve")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _png(fig)


def capacity_curves(doc: Mapping[str, Any]) -> bytes:
    """Throughput against the SLO's latency metric per endpoint, stream counts labelled, SLOs dashed."""
    fig, ax = _fig(6.4, 4.0)
    for label, curve in doc["curves"].items():
        xs, ys = [c[1] for c in curve], [c[0] for c in curve]
        ax.plot(xs, ys, "o-", label=label)
        for n, x, y in zip(doc["levels"], xs, ys, strict=False):
            ax.annotate(f"{n:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for row in doc["slos"]:
        ax.axvline(row["slo_ms"], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"{doc['metric']} (ms)")
    ax.set_ylabel("output tok/s")
    ax.set_title(f"Throughput vs latency per level ({doc.get('axis', 'streams')}; dashed: SLOs)", fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)
