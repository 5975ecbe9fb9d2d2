"""Capacity at a latency SLO: the interpolation, the summary, and ``compare --concurrency-list`` end to end
over two FAKE servers (one fast, one with 100 ms TTFT)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.capacity import capacity, capacity_table, summarize_capacity
from loadtest.cli import main

# (tok/s, TTFT p99 ms) at increasing stream counts: rises, then saturates and degrades
CURVE = [(1000.0, 600.0), (1400.0, 1200.0), (1800.0, 1500.0), (1900.0, 2700.0), (1600.0, 5400.0)]


def test_capacity_interpolates_the_crossing() -> None:
    # 1 s lies between 600 ms (1000 tok/s) and 1200 ms (1400 tok/s): 2/3 of the way
    assert capacity(CURVE, 1000.0) == pytest.approx(1000.0 + 400.0 * 400.0 / 600.0)
    # 2 s: between 1500 ms (1800) and 2700 ms (1900): 1800 + 100 * 500/1200
    assert capacity(CURVE, 2000.0) == pytest.approx(1800.0 + 100.0 * 500.0 / 1200.0)
    assert capacity(CURVE, 1500.0) == pytest.approx(1800.0)


def test_capacity_edges() -> None:
    assert capacity(CURVE, 500.0) is None  # even the lightest level misses
    assert capacity(CURVE, 10_000.0) == 1900.0  # all levels meet it: the best measured, nothing beyond
    assert capacity([], 1000.0) is None
    # a degraded tail level that meets the SLO again does not lower the capacity
    assert capacity([(1000.0, 100.0), (900.0, 200.0)], 300.0) == 1000.0


def test_summary_ratio_and_bounds() -> None:
    pts = {
        "A": [{"output_throughput": t, "p99_ttft_ms": ms} for t, ms in CURVE],
        "B": [{"output_throughput": t * 0.5, "p99_ttft_ms": ms} for t, ms in CURVE],
    }
    doc = summarize_capacity([32, 64, 96, 128, 192], pts, "p99_ttft_ms", [500.0, 2000.0, 9000.0])
    r500, r2000, r9000 = doc["slos"]
    assert r500["capacity"] == {"A": None, "B": None} and r500["ratio"] is None
    assert r2000["ratio"] == pytest.approx(2.0) and r2000["bounded"] == {"A": True, "B": True}
    assert r9000["bounded"] == {"A": False, "B": False}  # the top level still met it: a lower bound
    table = capacity_table(doc)
    assert "not met" in table and ">= 1,900" in table and "2.00x" in table


def test_cli_compare_concurrency_list(fake_factory: Callable[..., str], fake_url: str, tmp_path: Path) -> None:
    slow = fake_factory(ttft_s=0.1, tokens_per_s=2000.0)
    out = tmp_path / "cap"
    rc = main([
        "compare", "--a-base-url", fake_url, "--a-label", "fast", "--b-base-url", slow, "--b-label", "slow",
        "--concurrency-list", "2,1", "--prompts-per-level", "3", "--rounds", "2",
        "--capacity-slo", "50", "--random-input-len", "12", "--random-output-len", "4", "--ignore-eos",
        "--no-progress", "--output", str(out),
    ])
    assert rc == 0
    doc = json.loads((out / "capacity.json").read_text())
    assert doc["levels"] == [1, 2] and doc["labels"] == ["fast", "slow"]
    for n in (1, 2):  # one full comparison per level, with 3 conversations per stream
        cmp = json.loads((out / f"c{n}" / "compare.json").read_text())
        assert cmp["max_concurrency"] == n
        assert cmp["endpoints"]["fast"]["completed"] == cmp["endpoints"]["slow"]["completed"] == 3 * n
    (row,) = doc["slos"]
    assert row["capacity"]["slow"] is None  # 100 ms TTFT never meets a 50 ms p99 SLO
    assert row["capacity"]["fast"] == max(c[0] for c in doc["curves"]["fast"]) and row["ratio"] is None
    assert "data:image/png;base64," in (out / "capacity.html").read_text()


def test_cli_compare_rate_list(fake_url: str, tmp_path: Path) -> None:
    out = tmp_path / "rates"
    rc = main([
        "compare", "--a-base-url", fake_url, "--b-base-url", fake_url, "--rate-list", "40,20",
        "--prompts-per-level", "0.25", "--rounds", "1", "--capacity-slo", "1000", "--random-input-len", "8",
        "--random-output-len", "2", "--ignore-eos", "--no-progress", "--output", str(out),
    ])
    assert rc == 0
    doc = json.loads((out / "capacity.json").read_text())
    assert doc["axis"] == "req/s" and doc["levels"] == [20.0, 40.0]
    for rate, n in (("20", 5), ("40", 10)):  # 0.25 s of arrivals per level
        cmp = json.loads((out / f"r{rate}" / "compare.json").read_text())
        assert cmp["request_rate"] == float(rate) and cmp["endpoints"]["A"]["completed"] == n
    assert "| req/s |" in (out / "capacity.md").read_text()


def test_cli_compare_capacity_rejects_unknown_metric(fake_url: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a result key"):
        main([
            "compare", "--a-base-url", fake_url, "--b-base-url", fake_url, "--concurrency-list", "1",
            "--capacity-metric", "p95_ttft_ms", "--num-prompts", "2", "--rounds", "1",
            "--random-input-len", "8", "--random-output-len", "2", "--no-progress", "--output", str(tmp_path),
        ])
