"""Sweep from low load to saturation, found automatically.

``rate`` mode: a first step at concurrency 1 measures the unloaded request rate r1; then Poisson rates
r1 * start_factor * factor^k. ``concurrency`` mode: closed loop at 1, factor, factor^2 ... streams.
The sweep stops at saturation, when output throughput has not grown by ``min_gain`` over the best so far
for ``patience`` steps; when an SLO breaks (goodput below ``slo_fraction`` of completed requests, given
``--goodput``); when the error rate passes ``max_error_rate``; or after ``max_steps``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from loadtest.client import ClientOptions, RequestRecord
from loadtest.metrics import compute_metrics
from loadtest.runner import LoadConfig, run_once
from loadtest.workloads.base import Conversation

logger = logging.getLogger(__name__)


class SweepConfig(BaseModel):
    """How the sweep walks the load axis and when it stops."""

    mode: Literal["rate", "concurrency"] = Field(
        default="rate", description="axis: Poisson rate or closed-loop streams"
    )
    factor: float = Field(default=2.0, gt=1, description="multiplier between steps")
    start_factor: float = Field(default=0.5, gt=0, description="rate mode: first rate = r1 * start_factor")
    max_steps: int = Field(default=10, ge=1, description="at most this many loaded steps")
    min_gain: float = Field(default=0.05, ge=0, description="throughput growth that counts as progress")
    patience: int = Field(default=1, ge=1, description="steps without progress before saturation is declared")
    slo_fraction: float = Field(
        default=0.9, gt=0, le=1, description="goodput / completed below this breaks the SLO"
    )
    max_error_rate: float = Field(default=0.05, ge=0, le=1, description="error rate that ends the sweep")


@dataclass
class SweepResult:
    """Steps (summary metrics per load) and the records of each step."""

    points: list[dict[str, Any]] = field(default_factory=list)
    records: list[list[RequestRecord]] = field(default_factory=list)
    stop_reason: str = "max_steps"
    saturation: dict[str, Any] | None = None


def _step_load(base: LoadConfig, sweep: SweepConfig, value: float) -> LoadConfig:
    if sweep.mode == "rate":
        return base.model_copy(update={"request_rate": value, "max_concurrency": None, "warmup": 0})
    return base.model_copy(update={"request_rate": math.inf, "max_concurrency": int(value), "warmup": 0})


async def _measure(
    opts: ClientOptions,
    convs: Sequence[Conversation],
    load: LoadConfig,
    percentiles: Sequence[float],
    goodput: dict[str, float] | None,
) -> tuple[dict[str, Any], list]:
    res = await run_once(opts, convs, load)
    m = compute_metrics(res.records, res.duration_s, percentiles, goodput)
    m.update(res.cpu)
    m["percentiles"] = list(percentiles)
    return m, res.records


def _verdict(
    point: dict[str, Any], best: float, stale: int, sweep: SweepConfig, goodput: dict[str, float] | None
) -> tuple[str | None, int]:
    if point["error_rate"] > sweep.max_error_rate:
        return "error_rate", stale
    if (
        goodput
        and point["completed"]
        and (point["request_goodput"] or 0) * point["duration"] < (sweep.slo_fraction * point["completed"])
    ):
        return "slo_broken", stale
    stale = 0 if point["output_throughput"] > best * (1 + sweep.min_gain) else stale + 1
    return ("saturated" if stale >= sweep.patience else None), stale


async def run_sweep(
    opts: ClientOptions,
    convs: Sequence[Conversation],
    base: LoadConfig,
    sweep: SweepConfig,
    percentiles: Sequence[float] = (50, 90, 99),
    goodput: dict[str, float] | None = None,
) -> SweepResult:
    """Run the sweep; each step offers the whole workload (``convs``) or ``base.duration_s``."""
    out = SweepResult()
    values: list[float]
    if sweep.mode == "rate":
        probe_load = base.model_copy(update={"request_rate": math.inf, "max_concurrency": 1})
        probe, recs = await _measure(opts, convs, probe_load, percentiles, goodput)
        out.points.append({"load": 0.0, "offered_rate": 0.0, "concurrency": 1, **probe})
        out.records.append(recs)
        r1 = max(probe["request_throughput"], 1e-3)
        values = [r1 * sweep.start_factor * sweep.factor**k for k in range(sweep.max_steps)]
    else:
        values = [float(round(sweep.factor**k)) for k in range(sweep.max_steps)]
        values = sorted(set(values))
    best, stale = 0.0, 0
    for value in values:
        load = _step_load(base, sweep, value)
        logger.info("sweep step: %s = %.3g", sweep.mode, value)
        m, recs = await _measure(opts, convs, load, percentiles, goodput)
        point = {
            "load": value,
            "offered_rate": value if sweep.mode == "rate" else None,
            "concurrency": int(value) if sweep.mode == "concurrency" else None,
            **m,
        }
        out.points.append(point)
        out.records.append(recs)
        reason, stale = _verdict(point, best, stale, sweep, goodput)
        best = max(best, point["output_throughput"])
        if reason:
            out.stop_reason = reason
            break
    loaded = [p for p in out.points if p["load"]] or out.points
    out.saturation = max(loaded, key=lambda p: p["output_throughput"])
    return out
