"""Benchmark metrics with ``vllm bench serve`` definitions and JSON key names.

- TTFT: send -> first generated text. E2EL: send -> last SSE message.
- TPOT: (E2EL - TTFT) / (output_tokens - 1) for requests with more than one output token (excludes the
  first token); requests with <= 1 token count as TPOT 0 for goodput, as in vLLM.
- ITL: gaps between streamed chunks, pooled over all requests.
- Throughputs divide by the benchmark duration (first send to last completion); output tokens are the
  server's ``usage.completion_tokens`` (counted chunks when missing); input tokens its ``prompt_tokens``.
- Goodput: requests meeting every SLO (``ttft``, ``tpot``, ``e2el``; ms) per second.
- Client queue time (not in vLLM): arrival -> send, i.e. time waiting for a ``--max-concurrency`` slot
  or for an overloaded client loop; ``e2el_incl_queue`` adds it to E2EL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from loadtest.client import RequestRecord

GOODPUT_METRICS = ("ttft", "tpot", "e2el")
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_incl_queue")


def parse_goodput(items: Iterable[str]) -> dict[str, float]:
    """Parse ``["ttft:500", "tpot:50"]`` (ms) into a dict; rejects unknown names and non-positive values."""
    out: dict[str, float] = {}
    for item in items:
        for part in str(item).replace(",", " ").split():
            name, _, value = part.partition(":")
            if name not in GOODPUT_METRICS:
                raise ValueError(f"unknown goodput metric {name!r}; use {', '.join(GOODPUT_METRICS)}")
            v = float(value)
            if v <= 0:
                raise ValueError(f"goodput SLO for {name} must be > 0 ms")
            out[name] = v
    return out


def parse_percentiles(text: str) -> list[float]:
    """Parse ``"50,90,99"`` into floats in (0, 100]."""
    ps = [float(x) for x in str(text).split(",") if x.strip()]
    if not ps or any(p <= 0 or p > 100 for p in ps):
        raise ValueError("percentiles must be in (0, 100]")
    return ps


def pword(p: float) -> str:
    """vLLM's percentile label: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def tpot_of(r: RequestRecord) -> float:
    """TPOT in seconds (0 when there is at most one output token)."""
    if r.output_tokens > 1 and r.ttft is not None:
        return (r.latency - r.ttft) / (r.output_tokens - 1)
    return 0.0


def _stats(prefix: str, values_s: Sequence[float], percentiles: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values_s, dtype=float) * 1000.0 if len(values_s) else np.zeros(1)
    out = {
        f"mean_{prefix}_ms": float(np.mean(arr)),
        f"median_{prefix}_ms": float(np.median(arr)),
        f"std_{prefix}_ms": float(np.std(arr)),
    }
    for p in percentiles:
        out[f"p{pword(p)}_{prefix}_ms"] = float(np.percentile(arr, p))
    return out


def is_good(r: RequestRecord, slo_ms: dict[str, float]) -> bool:
    """Whether a successful request meets every SLO (vLLM: TPOT of a 1-token reply is 0)."""
    vals = {"ttft": r.ttft or 0.0, "tpot": tpot_of(r), "e2el": r.latency}
    return all(vals[k] * 1000.0 <= v for k, v in slo_ms.items())


def _peaks(ok: Sequence[RequestRecord]) -> tuple[float, int]:
    """vLLM's max_output_tokens_per_s (1 s buckets of token times) and max_concurrent_requests."""
    if not ok:
        return 0.0, 0
    t0 = min(r.start for r in ok)
    t1 = max(r.start + r.latency for r in ok)
    n = int(np.ceil(t1 - t0)) + 1
    toks = np.zeros(n)
    conc = np.zeros(n)
    for r in ok:
        t = r.start + (r.ttft or 0.0)
        times = [t, *(t + c for c in np.cumsum(r.itl))] if r.itl else [t]
        for x in times:
            b = int(x - t0)
            if 0 <= b < n:
                toks[b] += 1
        conc[int(r.start - t0) : int(r.start + r.latency - t0) + 1] += 1
    return float(toks.max()), int(conc.max())


def compute_metrics(
    records: Sequence[RequestRecord],
    duration_s: float,
    percentiles: Sequence[float] = (99,),
    goodput: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Compute the summary metrics of one run (or of a subset, e.g. one task, over the same duration).

    Args:
        records: Measured requests (warm-up excluded).
        duration_s: Benchmark duration in seconds.
        percentiles: Percentiles to report, e.g. (50, 90, 99).
        goodput: SLOs in ms by metric name; None or empty for no goodput.

    Returns:
        A flat dict with vLLM key names (``request_throughput``, ``mean_ttft_ms``, ``p99_itl_ms``...)
        plus ``*_client_queue_time_ms``, ``*_e2el_incl_queue_ms``, ``errors`` and ``checks``.
    """
    ok = [r for r in records if r.success]
    failed = [r for r in records if not r.success]
    dur = max(duration_s, 1e-9)
    total_in = sum(r.prompt_len for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    good = sum(1 for r in ok if is_good(r, goodput)) if goodput else None
    max_tok_s, max_conc = _peaks(ok)
    out: dict[str, Any] = {
        "duration": duration_s,
        "completed": len(ok),
        "failed": len(failed),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(ok) / dur,
        "request_goodput": (good / dur) if good is not None else None,
        "output_throughput": total_out / dur,
        "total_token_throughput": (total_in + total_out) / dur,
        "max_output_tokens_per_s": max_tok_s,
        "max_concurrent_requests": max_conc,
    }
    series = {
        "ttft": [r.ttft or 0.0 for r in ok],
        "tpot": [tpot_of(r) for r in ok if r.output_tokens > 1],
        "itl": [x for r in ok for x in r.itl],
        "e2el": [r.latency for r in ok],
        "client_queue_time": [r.queue_time for r in ok],
        "e2el_incl_queue": [r.latency + r.queue_time for r in ok],
    }
    for name in LATENCY_METRICS:
        out.update(_stats(name, series[name], percentiles))
    out["errors"] = dict(Counter(r.error_kind or "unknown" for r in failed))
    out["error_rate"] = len(failed) / len(records) if records else 0.0
    out["checks"] = dict(Counter(c for r in ok for c in r.checks_failed))
    out["requests_failing_checks"] = sum(1 for r in ok if r.checks_failed)
    return out


def breakdown(
    records: Sequence[RequestRecord],
    key: str,
    duration_s: float,
    percentiles: Sequence[float],
    goodput: dict[str, float] | None,
) -> dict[str, dict[str, Any]]:
    """Metrics per value of a record attribute (``task``, ``routed_task`` or ``routed_model``)."""
    groups: dict[str, list[RequestRecord]] = {}
    for r in records:
        groups.setdefault(str(getattr(r, key) or "-"), []).append(r)
    return {k: compute_metrics(v, duration_s, percentiles, goodput) for k, v in sorted(groups.items())}
