"""The engine-to-router record: building, parsing, staleness, unknown fields kept."""

from __future__ import annotations

import time

from serve.engine_record import STALE_AFTER_S, EngineRecord, EngineStats, by_deployment, record_key


def test_record_round_trips_with_stats_and_unknown_fields() -> None:
    rec = EngineRecord(deployment="coder", replica="r1", url="http://10.0.0.2:4000", pid=42, started=100.0,
                       heartbeat=105.0, stats=EngineStats(prefix_queries=10, prefix_hits=4, waiting=3),
                       extra={"future_field": [1, 2]})
    back = EngineRecord.from_json(rec.to_json())
    assert back == rec
    assert back is not None and back.key == record_key("coder", "r1") == b"qwen-serve/endpoints/coder/r1"


def test_malformed_records_parse_to_none() -> None:
    assert EngineRecord.from_json(b"not json") is None
    assert EngineRecord.from_json(b'{"deployment": "x"}') is None  # no replica, no url
    assert EngineRecord.from_json(b"[1, 2]") is None


def test_staleness_uses_heartbeat_then_start() -> None:
    now = time.time()
    fresh = EngineRecord("d", "r", "http://h:1", started=now - 3600, heartbeat=now - 1)
    assert not fresh.stale(now)
    old = EngineRecord("d", "r", "http://h:1", started=now - 3600, heartbeat=now - STALE_AFTER_S - 1)
    assert old.stale(now)
    # An old record written before heartbeats existed falls back to its start time.
    legacy = EngineRecord.from_json(b'{"deployment": "d", "replica": "r", "url": "u", "started": 1.0}')
    assert legacy is not None and legacy.stale(now)


def test_stats_freshness_and_grouping() -> None:
    assert EngineStats(updated=time.time()).fresh()
    assert not EngineStats(updated=time.time() - 60).fresh()
    recs = [EngineRecord("a", "1", "u1"), EngineRecord("a", "2", "u2"), EngineRecord("b", "1", "u3")]
    grouped = by_deployment(recs)
    assert set(grouped) == {"a", "b"} and set(grouped["a"]) == {"1", "2"}
