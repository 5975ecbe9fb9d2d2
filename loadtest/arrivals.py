"""Arrival processes: Poisson, gamma (burstiness), constant, and "all at once" (rate = inf).

Semantics follow ``vllm bench serve``: inter-arrival gaps ~ Gamma(shape=burstiness,
scale=1 / (rate * burstiness)), so burstiness 1 is Poisson, < 1 burstier, > 1 smoother and inf constant.
For a fixed count the gaps are rescaled so the last arrival is at ``n / rate`` (vLLM does this to cut
run-to-run throughput noise); duration-bounded runs keep the raw process.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

ArrivalKind = Literal["poisson", "gamma", "constant"]


def arrival_kind(rate: float, burstiness: float) -> str:
    """Name of the process for a rate and burstiness (for reports)."""
    if math.isinf(rate):
        return "all-at-once"
    if math.isinf(burstiness):
        return "constant"
    return "poisson" if burstiness == 1.0 else f"gamma(k={burstiness:g})"


def arrival_times(
    n: int, rate: float, burstiness: float = 1.0, seed: int = 0, normalize: bool = True
) -> np.ndarray:
    """Return ``n`` arrival offsets in seconds from the start, non-decreasing.

    Args:
        n: Number of arrivals.
        rate: Mean requests per second; ``inf`` sends everything at t = 0.
        burstiness: Gamma shape; 1 = Poisson, ``inf`` = constant spacing.
        seed: Seed of the process (independent of the workload seed's stream).
        normalize: Rescale so the last arrival lands at ``n / rate`` (vLLM's behaviour).

    Returns:
        Array of shape (n,). The first arrival is at the first gap, as in vLLM.
    """
    if n <= 0:
        return np.zeros(0)
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    if math.isinf(rate):
        return np.zeros(n)
    if math.isinf(burstiness):
        gaps = np.full(n, 1.0 / rate)
    else:
        rng = np.random.default_rng(seed)
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    times = np.cumsum(gaps)
    if normalize and times[-1] > 0:
        times *= (n / rate) / times[-1]
    return times
