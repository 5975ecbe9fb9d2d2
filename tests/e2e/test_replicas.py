"""Replica choice on the real stack: two vLLM engine replicas of one deployment (issue 9).

The e2e fleet runs ``TWO_REPLICAS`` with two replicas under prefix affinity (load guard 1.0, slack 2). The
engines' own prefix-cache counters (published with each replica's heartbeat) show where the prefix was reused.
Round-robin is checked with a second router, in this process, over the same two real engines.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.fleet import ENGINE_SECRET, TWO_REPLICAS, e2e_fleet
from tests.router_kit import make_router

# ~700 tokens: several of vLLM's KV blocks, so a repeat is a prefix-cache hit whatever the block size.
SHARED_SYSTEM = "You review pull requests for a payments service written in Python and Go. " * 60


def replicas(stack_url: str) -> dict[str, dict[str, Any]]:
    """The stack's endpoint table for the two-replica deployment, by replica id (localhost needs no key)."""
    rows = httpx.get(stack_url + "/v1/status", timeout=10).json()["endpoints"][TWO_REPLICAS]
    return {r["replica"]: r for r in rows}


def counters(row: dict[str, Any]) -> tuple[int, int, int]:
    """The cumulative prefix-cache counters of one replica row."""
    e = row["engine"]
    return e["prefix_requests"], e["prefix_queries"], e["prefix_hits"]


def wait_for_engine_stats(stack_url: str, done: Any, timeout_s: float = 20.0) -> dict[str, dict[str, Any]]:
    """Poll until ``done(table)`` holds (engine stats arrive with the 2 s heartbeats)."""
    deadline = time.monotonic() + timeout_s
    while True:
        table = replicas(stack_url)
        if done(table) or time.monotonic() > deadline:
            return table
        time.sleep(0.5)


def ask(client: Any, system: str, user: str, **kw: Any) -> tuple[str, str]:
    """One chat request to the two-replica deployment; returns (replica, replica-reason) from the headers."""
    raw = client.chat.completions.with_raw_response.create(
        model=TWO_REPLICAS, messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        max_tokens=kw.pop("max_tokens", 4), temperature=0, **kw)
    raw.parse()
    return raw.headers["x-qwen-replica"], raw.headers["x-qwen-replica-reason"]


@pytest.fixture()
def two(stack_url: str) -> dict[str, dict[str, Any]]:
    """The two replicas' table once their engine counters are settled (no heartbeat still in transit)."""
    table = wait_for_engine_stats(stack_url, lambda t: len(t) == 2 and all(r["engine"] for r in t.values()),
                                  timeout_s=60)
    assert len(table) == 2, f"expected two replicas of {TWO_REPLICAS}, got {list(table)}"
    assert all(r["engine"] is not None for r in table.values()), "every engine replica reports its stats"
    for _ in range(10):
        time.sleep(2.5)  # longer than one heartbeat
        again = replicas(stack_url)
        if all(counters(again[i]) == counters(table[i]) for i in table):
            break
        table = again
    return table


def test_shared_prefix_sticks_to_one_replica_and_hits_its_prefix_cache(client, stack_url: str,  # type: ignore[no-untyped-def]
                                                                       two: dict[str, dict[str, Any]]) -> None:
    before = two
    picks = [ask(client, SHARED_SYSTEM, f"Review change #{i}.") for i in range(6)]
    assert [reason for _, reason in picks] == ["affinity_new"] + ["affinity"] * 5
    chosen = {rid for rid, _ in picks}
    assert len(chosen) == 1, f"a shared prefix stays on one replica: {picks}"
    (home,) = chosen
    other = next(r for r in before if r != home)

    def settled(t: dict[str, dict[str, Any]]) -> bool:
        return t[home]["engine"]["prefix_requests"] >= before[home]["engine"]["prefix_requests"] + 6

    after = wait_for_engine_stats(stack_url, settled)
    assert after[home]["served"] - before[home]["served"] == 6
    assert after[other]["served"] == before[other]["served"]
    home_hits = after[home]["engine"]["prefix_hits"] - before[home]["engine"]["prefix_hits"]
    home_queries = after[home]["engine"]["prefix_queries"] - before[home]["engine"]["prefix_queries"]
    assert settled(after), "the engine counted the six requests"
    # the five repeats find the ~700-token prefix in the cache: well over half of all prompt tokens hit
    assert home_hits > 0.6 * home_queries > 0, (home_hits, home_queries)
    assert after[other]["engine"]["prefix_requests"] == before[other]["engine"]["prefix_requests"]


def test_distinct_prefixes_use_both_replicas(client, two: dict[str, dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    picks = {ask(client, f"You are assistant number {i} of a help desk.", "hello")[0] for i in range(16)}
    assert picks == set(two), "distinct prefixes spread over both replicas"


def test_affinity_spreads_when_the_preferred_replica_is_saturated(client, stack_url: str,  # type: ignore[no-untyped-def]
                                                                  two: dict[str, dict[str, Any]]) -> None:
    system = "Saturation test: a long shared system prompt for every request. " * 20

    def long_one(i: int) -> tuple[str, str]:
        return ask(client, system, f"Write a long story, part {i}.", max_tokens=300,
                   extra_body={"ignore_eos": True})

    with ThreadPoolExecutor(6) as pool:
        picks = list(pool.map(long_one, range(6)))
    reasons = [reason for _, reason in picks]
    used = {rid for rid, _ in picks}
    assert used == set(two), f"the load guard sent part of the burst to the other replica: {picks}"
    assert "affinity_fallback" in reasons and "affinity" in reasons, reasons
    metrics = httpx.get(stack_url + "/metrics", timeout=10).text
    assert f'qwen_router_replica_choices_total{{model="{TWO_REPLICAS}",outcome="affinity_fallback"}}' in metrics


async def test_round_robin_alternates_over_the_real_engines(stack_url: str,
                                                            two: dict[str, dict[str, Any]]) -> None:
    from openai import AsyncOpenAI


    data = e2e_fleet()
    data["security"] = {"require_api_key": False}
    for dep in data["deployments"]:
        if dep["name"] == TWO_REPLICAS:
            dep["replica_routing"] = {"policy": "round_robin"}
    ids = sorted(two)  # StaticRegistry names them r0, r1 in this order
    before = two
    async with make_router(data, {TWO_REPLICAS: [two[i]["url"] for i in ids]}, timeout=60,
                           engine_secret=ENGINE_SECRET) as (http, _):
        client = AsyncOpenAI(base_url="http://router/v1", api_key="unused", http_client=http, max_retries=0)
        order = []
        for i in range(4):
            raw = await client.chat.completions.with_raw_response.create(
                model=TWO_REPLICAS, messages=[{"role": "user", "content": SHARED_SYSTEM + str(i)}], max_tokens=2)
            raw.parse()
            order.append((raw.headers["x-qwen-replica"], raw.headers["x-qwen-replica-reason"]))
    assert order == [("r0", "round_robin"), ("r1", "round_robin")] * 2
    # the real engines counted two requests each (the router's bookkeeping is not the evidence)
    after = wait_for_engine_stats(stack_url, lambda t: all(
        t[i]["engine"]["prefix_requests"] >= before[i]["engine"]["prefix_requests"] + 2 for i in ids))
    assert [after[i]["engine"]["prefix_requests"] - before[i]["engine"]["prefix_requests"] for i in ids] == [2, 2]
