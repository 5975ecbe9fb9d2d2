"""The harness end to end against the fake server (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.cli import main
from loadtest.client import ClientOptions, RequestRecord
from loadtest.compare import run_compare
from loadtest.metrics import compute_metrics
from loadtest.runner import LoadConfig, RunResult, run_once
from loadtest.sweep import SweepConfig, run_sweep
from loadtest.testing import free_port
from loadtest.workloads import DatasetName, LengthDist, WorkloadConfig, build_workload

Q = LoadConfig(disable_tqdm=True)


def _convs(
    n: int = 20, dataset: DatasetName = "random", inp: str = "16", out: str = "8", **kw: object
) -> list:
    cfg = WorkloadConfig(
        dataset=dataset, num_prompts=n, input_len=LengthDist.parse(inp), output_len=LengthDist.parse(out)
    )
    return build_workload(cfg.model_copy(update=kw))


def _run(url: str, convs: list, load: LoadConfig = Q, **opts: object) -> RunResult:
    o = ClientOptions(base_url=url, model="fake-qwen", **opts)  # type: ignore[arg-type]
    return asyncio.run(run_once(o, convs, load))


def _max_inflight(recs: list[RequestRecord]) -> int:
    ev = sorted([(r.start, 1) for r in recs] + [(r.start + r.latency, -1) for r in recs])
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_run_exact_lengths_and_checks(fake_url: str, endpoint: str) -> None:
    res = _run(
        fake_url,
        _convs(20),
        LoadConfig(max_concurrency=8, warmup=2, disable_tqdm=True),
        endpoint=endpoint,
        ignore_eos=True,
    )
    assert len(res.records) == 20 and all(r.success for r in res.records)
    assert {r.output_tokens for r in res.records} == {8}
    assert all(r.checks_failed == [] for r in res.records)
    assert all(r.ttft is not None and r.ttft >= 0.005 and len(r.itl) == 7 for r in res.records)
    if endpoint == "completions":  # server-side prompt tokens == the workload's exact length
        assert all(r.prompt_len == r.expected_prompt_len == 16 for r in res.records)
    assert _max_inflight(res.records) <= 8
    assert res.stopped_by == "count" and "client_cpu_percent_mean" in res.cpu


def test_natural_stop_finish_reason(fake_url: str) -> None:
    res = _run(fake_url, _convs(5, out="50"))
    assert all(
        r.finish_reason == "stop" and r.output_tokens == 6 and not r.checks_failed for r in res.records
    )


def test_checks_detect_bad_usage_and_reasoning(fake_factory: Callable[..., str], fake_url: str) -> None:
    skewed = fake_factory(ttft_s=0.0, tokens_per_s=5000.0, usage_skew=1)
    res = _run(skewed, _convs(5))
    assert all("usage_mismatch" in r.checks_failed for r in res.records)
    good = _run(fake_url, _convs(5), thinking=True, ignore_eos=True)
    assert all(r.reasoning_chunks == 2 and not r.checks_failed for r in good.records)
    mixed = fake_factory(ttft_s=0.0, tokens_per_s=5000.0, reasoning_field="content")
    bad = _run(mixed, _convs(5), thinking=True)
    assert all("reasoning_missing" in r.checks_failed for r in bad.records)


def test_error_kinds_and_error_rate_stop(fake_factory: Callable[..., str]) -> None:
    failing = fake_factory(error_rate=1.0)
    res = _run(
        failing,
        _convs(60),
        LoadConfig(request_rate=200.0, max_error_rate=0.5, min_requests_for_error_rate=10, disable_tqdm=True),
    )
    assert res.stopped_by == "error_rate" and len(res.records) < 60
    assert {r.error_kind for r in res.records} == {"http_503"}
    dead = _run(f"http://127.0.0.1:{free_port()}", _convs(3))
    assert {r.error_kind for r in dead.records} == {"connection"}
    slow = fake_factory(ttft_s=2.0)
    late = _run(slow, _convs(2), timeout_s=0.2)
    assert {r.error_kind for r in late.records} == {"timeout"}


def test_duration_stop_cycles_workload(fake_url: str) -> None:
    res = _run(fake_url, _convs(5), LoadConfig(request_rate=40.0, duration_s=1.0, disable_tqdm=True))
    assert res.stopped_by == "duration"
    assert len(res.records) > 5  # the 5 conversations were reused
    assert len({r.conversation for r in res.records}) == len(res.records)


def test_closed_loop_and_client_queue(fake_factory: Callable[..., str]) -> None:
    url = fake_factory(ttft_s=0.02, tokens_per_s=1000.0)
    closed = _run(url, _convs(12), LoadConfig(max_concurrency=3, disable_tqdm=True))
    assert _max_inflight(closed.records) <= 3
    assert max(r.queue_time for r in closed.records) < 0.02  # workers send at once: no queue
    queued = _run(url, _convs(12), LoadConfig(request_rate=1000.0, max_concurrency=1, disable_tqdm=True))
    m = compute_metrics(queued.records, queued.duration_s, [50], None)
    assert m["p50_client_queue_time_ms"] > 20.0  # each waits behind >= 1 earlier request of >= 20 ms
    assert m["mean_e2el_incl_queue_ms"] > m["mean_e2el_ms"]


def test_multi_turn_sends_history(fake_url: str) -> None:
    convs = _convs(4, dataset="multi-turn", turns=LengthDist.parse(3))
    res = _run(fake_url, convs, endpoint="completions")
    assert len(res.records) == 12 and all(r.success for r in res.records)
    by_conv: dict[int, list[RequestRecord]] = {}
    for r in res.records:
        by_conv.setdefault(r.conversation, []).append(r)
    for recs in by_conv.values():
        recs.sort(key=lambda r: r.turn)
        assert [r.turn for r in recs] == [0, 1, 2]
        # the server counts history: prompt grows by the previous prompt + reply each turn
        assert recs[1].prompt_len > recs[1].expected_prompt_len + recs[0].expected_prompt_len
        assert recs[2].prompt_len > recs[1].prompt_len


def test_compare_rounds(fake_factory: Callable[..., str], fake_url: str) -> None:
    slow = fake_factory(ttft_s=0.1, tokens_per_s=2000.0)
    a = ClientOptions(base_url=fake_url, model="fake-qwen")
    b = ClientOptions(base_url=slow, model="fake-qwen")
    res, recs = asyncio.run(
        run_compare(
            a,
            b,
            _convs(8),
            LoadConfig(request_rate=100.0, disable_tqdm=True),
            rounds=4,
            percentiles=[50, 99],
            labels=("fast", "slow"),
        )
    )
    ea, eb = res["endpoints"]["fast"], res["endpoints"]["slow"]
    assert len(recs["fast"]) == len(recs["slow"]) == 8
    assert eb["median_ttft_ms"] >= 100.0
    assert res["deltas_ms"]["median_ttft_ms"] == pytest.approx(ea["median_ttft_ms"] - eb["median_ttft_ms"])
    assert res["ratios"]["output_throughput"] == pytest.approx(
        ea["output_throughput"] / eb["output_throughput"]
    )
    assert len(res["per_round_output_throughput_ratio"]) == 4
    # identical prompts on both sides
    assert sorted(r.expected_prompt_len for r in recs["fast"]) == sorted(
        r.expected_prompt_len for r in recs["slow"]
    )


def test_tiny_sweep(fake_url: str) -> None:
    o = ClientOptions(base_url=fake_url, model="fake-qwen")
    res = asyncio.run(run_sweep(o, _convs(6), Q, SweepConfig(mode="concurrency", max_steps=3), [50]))
    assert [p["load"] for p in res.points] == [1.0, 2.0, 4.0]
    assert res.saturation is not None and res.stop_reason in {"max_steps", "saturated"}
    rate = asyncio.run(run_sweep(o, _convs(6), Q, SweepConfig(mode="rate", max_steps=2), [50]))
    assert len(rate.points) <= 3 and rate.points[0]["concurrency"] == 1
    assert rate.points[1]["offered_rate"] == pytest.approx(rate.points[0]["request_throughput"] * 0.5)


def test_cli_run_report_compare(fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--num-prompts", "10", "--random-input-len", "12", "--random-output-len", "4", "--no-progress"]
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--base-url",
            fake_url,
            "--dataset",
            "task-mix",
            "--request-rate",
            "100",
            "--goodput",
            "ttft:1000",
            "tpot:100",
            "--percentiles",
            "50,99",
            "--ignore-eos",
            "--output",
            str(out),
            *common,
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for key in (
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
    ):
        assert key in res, key
    assert (
        res["completed"] == 10 and res["total_output_tokens"] == 40 and res["model_id"] == "fake-qwen"
    )  # from /v1/models
    assert res["by_routed_model"] and res["routed_task_agreement"] is not None
    assert len((out / "requests.jsonl").read_text().splitlines()) == 10
    assert "data:image/png;base64," in (out / "report.html").read_text()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").exists()
    assert "Benchmark Result" in capsys.readouterr().out
    cmp_out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            "--a-base-url",
            fake_url,
            "--b-base-url",
            fake_url,
            "--a-model",
            "fake-qwen",
            "--b-model",
            "fake-qwen",
            "--rounds",
            "2",
            "--output",
            str(cmp_out),
            *common,
        ]
    )
    assert rc == 0
    cmp = json.loads((cmp_out / "compare.json").read_text())
    assert set(cmp["endpoints"]) == {"A", "B"} and not math.isnan(cmp["ratios"]["request_throughput"])
    assert "A/B" in capsys.readouterr().out
