"""Metric math on synthetic timings with known answers."""

from __future__ import annotations

import pytest

from loadtest.client import RequestRecord
from loadtest.metrics import breakdown, compute_metrics, parse_goodput, parse_percentiles, pword, tpot_of


def rec(
    ttft: float,
    itl: list[float],
    out: int,
    start: float = 0.0,
    task: str | None = None,
    prompt: int = 10,
    ok: bool = True,
    kind: str | None = None,
    queue: float = 0.0,
    checks: list[str] | None = None,
) -> RequestRecord:
    latency = ttft + sum(itl)
    return RequestRecord(
        conversation=0,
        turn=0,
        task=task,
        start=start,
        scheduled=start - queue,
        queue_time=queue,
        ttft=ttft if ok else None,
        itl=itl,
        latency=latency,
        success=ok,
        error_kind=kind,
        prompt_len=prompt,
        output_tokens=out if ok else 0,
        checks_failed=checks or [],
    )


def test_tpot_excludes_first_token() -> None:
    r = rec(0.1, [0.02, 0.02, 0.02, 0.02], out=5)  # latency 0.18
    assert tpot_of(r) == pytest.approx((0.18 - 0.1) / 4)
    assert tpot_of(rec(0.1, [], out=1)) == 0.0


def test_known_answers() -> None:
    recs = [
        rec(0.100, [0.01] * 9, out=10, start=0.0, prompt=100),  # latency 0.19, tpot 0.01
        rec(0.300, [0.03] * 9, out=10, start=0.5, prompt=200),  # latency 0.57, tpot 0.03
        rec(0.0, [], out=0, ok=False, kind="http_503"),
        rec(0.0, [], out=0, ok=False, kind="timeout"),
    ]
    m = compute_metrics(recs, duration_s=2.0, percentiles=[50, 99], goodput={"ttft": 200})
    assert m["completed"] == 2 and m["failed"] == 2
    assert m["request_throughput"] == pytest.approx(1.0)
    assert m["output_throughput"] == pytest.approx(10.0)
    assert m["total_token_throughput"] == pytest.approx((300 + 20) / 2)
    assert m["mean_ttft_ms"] == pytest.approx(200.0)
    assert m["median_ttft_ms"] == pytest.approx(200.0)
    assert m["p99_ttft_ms"] == pytest.approx(100 + 0.99 * 200)
    assert m["mean_tpot_ms"] == pytest.approx(20.0)
    assert m["mean_itl_ms"] == pytest.approx(20.0)  # pooled: 9 of 10 ms and 9 of 30 ms
    assert m["mean_e2el_ms"] == pytest.approx(380.0)
    assert m["request_goodput"] == pytest.approx(0.5)  # only the first meets ttft <= 200 ms
    assert m["errors"] == {"http_503": 1, "timeout": 1}
    assert m["error_rate"] == pytest.approx(0.5)


def test_goodput_all_slos_must_hold() -> None:
    recs = [rec(0.1, [0.05] * 4, out=5), rec(0.1, [0.01] * 4, out=5)]
    m = compute_metrics(recs, 1.0, [99], {"ttft": 150, "tpot": 20})
    assert m["request_goodput"] == pytest.approx(1.0)
    assert compute_metrics(recs, 1.0, [99], None)["request_goodput"] is None


def test_queue_time_and_e2el_incl_queue() -> None:
    m = compute_metrics([rec(0.1, [0.1], out=2, queue=0.5)], 1.0, [50], None)
    assert m["mean_client_queue_time_ms"] == pytest.approx(500.0)
    assert m["mean_e2el_incl_queue_ms"] == pytest.approx(700.0)
    assert m["mean_e2el_ms"] == pytest.approx(200.0)


def test_peaks() -> None:
    # Two overlapping requests, 3 tokens each inside the first second.
    recs = [rec(0.1, [0.1, 0.1], out=3, start=0.0), rec(0.1, [0.1, 0.1], out=3, start=0.2)]
    m = compute_metrics(recs, 1.0, [99], None)
    assert m["max_output_tokens_per_s"] == 6.0
    assert m["max_concurrent_requests"] == 2


def test_checks_and_breakdown() -> None:
    recs = [rec(0.1, [0.1], 2, task="code", checks=["usage_mismatch"]), rec(0.2, [0.1], 2, task="math")]
    m = compute_metrics(recs, 1.0, [99], None)
    assert m["checks"] == {"usage_mismatch": 1} and m["requests_failing_checks"] == 1
    by = breakdown(recs, "task", 1.0, [99], None)
    assert set(by) == {"code", "math"}
    assert by["math"]["mean_ttft_ms"] == pytest.approx(200.0)
    assert by["code"]["request_throughput"] == pytest.approx(1.0)


def test_empty_run_is_zero_not_crash() -> None:
    m = compute_metrics([], 1.0, [99], {"ttft": 1})
    assert m["completed"] == 0 and m["mean_ttft_ms"] == 0.0 and m["request_goodput"] == 0.0


def test_parsers() -> None:
    assert parse_goodput(["ttft:500", "tpot:50"]) == {"ttft": 500.0, "tpot": 50.0}
    with pytest.raises(ValueError):
        parse_goodput(["itl:5"])
    with pytest.raises(ValueError):
        parse_goodput(["ttft:0"])
    assert parse_percentiles("50,90,99.9") == [50.0, 90.0, 99.9]
    with pytest.raises(ValueError):
        parse_percentiles("0,50")
    assert pword(99.0) == "99" and pword(99.9) == "99.9"
