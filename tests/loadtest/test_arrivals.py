"""Arrival processes: statistical checks with fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtest.arrivals import arrival_kind, arrival_times


def _gaps(t: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([[0.0], t]))


def test_poisson_rate_and_cv() -> None:
    t = arrival_times(20000, rate=10.0, burstiness=1.0, seed=1, normalize=False)
    g = _gaps(t)
    assert g.mean() == pytest.approx(0.1, rel=0.03)
    assert g.std() / g.mean() == pytest.approx(1.0, rel=0.05)  # exponential: CV = 1


@pytest.mark.parametrize("k", [0.25, 4.0])
def test_gamma_burstiness_cv(k: float) -> None:
    g = _gaps(arrival_times(20000, rate=5.0, burstiness=k, seed=2, normalize=False))
    assert g.mean() == pytest.approx(0.2, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(1 / math.sqrt(k), rel=0.07)


def test_poisson_counts_per_window() -> None:
    t = arrival_times(20000, rate=4.0, seed=3, normalize=False)
    counts = np.bincount(t.astype(int))[:-1]  # arrivals per 1 s window
    assert counts.mean() == pytest.approx(4.0, rel=0.03)
    assert counts.var() == pytest.approx(4.0, rel=0.1)  # Poisson: variance = mean


def test_normalized_ends_at_n_over_rate() -> None:
    t = arrival_times(50, rate=5.0, seed=4)
    assert t[-1] == pytest.approx(10.0)
    assert np.all(np.diff(t) >= 0)


def test_constant_and_infinite() -> None:
    t = arrival_times(4, rate=2.0, burstiness=math.inf)
    assert list(t) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert list(arrival_times(3, rate=math.inf)) == [0.0, 0.0, 0.0]
    assert arrival_kind(math.inf, 1) == "all-at-once" and arrival_kind(2, 1) == "poisson"
    assert arrival_kind(2, math.inf) == "constant" and arrival_kind(2, 0.5).startswith("gamma")


def test_seeded_and_validated() -> None:
    assert np.array_equal(arrival_times(10, 3.0, seed=7), arrival_times(10, 3.0, seed=7))
    assert not np.array_equal(arrival_times(10, 3.0, seed=7), arrival_times(10, 3.0, seed=8))
    with pytest.raises(ValueError):
        arrival_times(3, rate=0)
