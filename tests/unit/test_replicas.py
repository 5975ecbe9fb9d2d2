"""Replica choice policies: round-robin, least-loaded, prefix/session affinity with a load guard."""

from __future__ import annotations

from typing import Any

from serve.config import FleetConfig
from serve.router.facts import RequestFacts, facts_of
from serve.router.replicas import LeastLoaded, PrefixAffinity, RoundRobin, affinity_key, make_picker
from serve.router.upstream import Endpoint
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict


def eps(n: int) -> list[Endpoint]:
    return [Endpoint("d", f"r{i}", f"http://x{i}") for i in range(n)]


def chat(system: str, user: str, **kw: Any) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}], **kw}


def facts(body: dict[str, Any], headers: dict[str, str] | None = None) -> RequestFacts:
    return facts_of(body, "chat", headers)


def key(body: dict[str, Any], headers: dict[str, str]) -> tuple[str, str] | None:
    return affinity_key(facts(body, headers))


def test_round_robin_alternates() -> None:
    e = eps(2)
    rr = RoundRobin()
    picks = [rr.pick(e, facts({}, {}))[0].replica for _ in range(4)]
    assert picks == ["r0", "r1", "r0", "r1"]


def test_least_loaded_takes_the_less_busy() -> None:
    e = eps(2)
    e[0].ongoing = 5
    assert LeastLoaded().pick(e, facts({}, {}))[0].replica == "r1"


def test_shared_prefix_sticks_and_distinct_prefixes_spread() -> None:
    e = eps(2)
    pa = PrefixAffinity()
    first, outcome = pa.pick(e, facts(chat("You are a SQL expert. " * 20, "q1"), {}))
    assert outcome == "affinity_new", "a prefix seen for the first time is cached nowhere yet"
    # the first user turn is part of the prefix key; the same conversation start always maps the same way
    for _ in range(5):
        assert pa.pick(e, facts(chat("You are a SQL expert. " * 20, "q1"), {})) == (first, "affinity")
    spread = {pa.pick(e, facts(chat(f"system prompt number {i}", "hi"), {}))[0].replica for i in range(40)}
    assert spread == {"r0", "r1"}, "different prefixes use both replicas"


def test_new_prefixes_go_to_the_least_busy_replica_and_then_stay_there() -> None:
    e = eps(2)
    pa = PrefixAffinity(load_guard=2.0, slack=4)
    e[0].ongoing = 3
    picks = [pa.pick(e, facts(chat(f"unshared prompt {i}", "x"), {})) for i in range(20)]
    assert {(ep.replica, out) for ep, out in picks} == {("r1", "affinity_new")}, "no cache yet: balance by load"
    e[0].ongoing, e[1].ongoing = 0, 3
    assert pa.pick(e, facts(chat("unshared prompt 7", "x"), {})) == (e[1], "affinity"), "it is cached on r1 now"


def test_remembered_prefixes_are_bounded_and_a_gone_replica_is_replaced() -> None:
    e = eps(3)
    pa = PrefixAffinity(max_keys=2)
    homes = [pa.pick(e, facts(chat(f"prefix {i}", "x"), {}))[0] for i in range(3)]
    assert len(pa._homes) == 2
    assert pa.pick(e, facts(chat("prefix 0", "x"), {}))[1] == "affinity_new", "the oldest prefix was forgotten"
    survivors = [ep for ep in e if ep is not homes[2]]
    ep, outcome = pa.pick(survivors, facts(chat("prefix 2", "x"), {}))
    assert outcome == "affinity_new" and ep in survivors


def test_session_id_sticks_regardless_of_content() -> None:
    e = eps(3)
    pa = PrefixAffinity()
    picks = [pa.pick(e, facts(chat(f"s{i}", f"u{i}"), {"x-session-id": "conv-42"})) for i in range(6)]
    assert len({p[0].replica for p in picks}) == 1 and {p[1] for p in picks} == {"session"}
    assert key({"user": "alice", "messages": []}, {}) == ("session", "alice")


def test_every_turn_of_a_conversation_has_the_same_key() -> None:
    turn1 = {"messages": [{"role": "user", "content": "short first question"}]}
    turn2 = {"messages": [{"role": "user", "content": "short first question"},
                          {"role": "assistant", "content": "an answer"}, {"role": "user", "content": "more"}]}
    assert key(turn1, {}) == key(turn2, {}) is not None
    with_sys = {"messages": [{"role": "system", "content": "S"}, *turn2["messages"]]}
    assert key(with_sys, {}) != key(turn2, {}), "the system prompt is part of the prefix"


def test_affinity_key_ignores_non_text_parts() -> None:
    odd = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}, "text": 5},
                                                      {"type": "text", "text": "describe"}]}]}
    plain = {"messages": [{"role": "user", "content": [{"type": "text", "text": "describe"}]}]}
    assert key(odd, {}) == key(plain, {}) is not None


def test_load_guard_falls_back_when_preferred_is_much_busier() -> None:
    e = eps(2)
    pa = PrefixAffinity(load_guard=2.0, slack=4)
    body = chat("shared system prompt", "hello")
    preferred = pa.pick(e, facts(body, {}))[0]
    other = e[1] if preferred is e[0] else e[0]
    preferred.ongoing, other.ongoing = 5, 1  # 5 <= 2*1+4: still affinity
    assert pa.pick(e, facts(body, {})) == (preferred, "affinity")
    preferred.ongoing = 7  # 7 > 2*1+4: fall back to the least busy
    assert pa.pick(e, facts(body, {})) == (other, "affinity_fallback")


def test_rendezvous_moves_only_keys_of_a_removed_replica() -> None:
    e3 = eps(3)
    pa = PrefixAffinity()
    keys = [chat(f"prompt {i}", "x") for i in range(60)]
    before = {i: pa.pick(e3, facts(k, {}))[0].replica for i, k in enumerate(keys)}
    e2 = [ep for ep in e3 if ep.replica != "r2"]
    after = {i: pa.pick(e2, facts(k, {}))[0].replica for i, k in enumerate(keys)}
    assert all(after[i] == before[i] for i in before if before[i] != "r2")


def test_make_picker_rejects_unknown() -> None:
    assert isinstance(make_picker("round_robin"), RoundRobin)
    try:
        make_picker("random")
    except ValueError as exc:
        assert "unknown replica policy" in str(exc)
    else:
        raise AssertionError("unknown policy accepted")


async def test_router_keeps_shared_prefix_on_one_replica_over_fake_engines() -> None:
    data = fleet_dict()
    data["deployments"][0]["replica_routing"] = {"policy": "prefix_affinity"}
    fleet = FleetConfig.from_dict(data)
    a, b = FakeEngineServer("general", ttft_s=0.0, tokens_per_s=5000.0), FakeEngineServer("general")
    try:
        async with make_router(fleet, {"general": [a.url, b.url], "coder": a.url, "moe": b.url}) as (c, app):
            body = {**chat("You are a helpful travel agent. " * 10, "Plan a day in Vilnius."),
                    "model": "general", "max_tokens": 2}
            replicas, reasons = set(), []
            for _ in range(6):
                r = await c.post("/v1/chat/completions", json=body)
                assert r.status_code == 200
                reasons.append(r.headers["x-qwen-replica-reason"])
                replicas.add(r.headers["x-qwen-replica"])
            assert reasons == ["affinity_new"] + ["affinity"] * 5
            assert len(replicas) == 1 and replicas <= {"r0", "r1"}, "the header names the replica that served"
            served = sorted(e.served for e in app.state.service.registry.load("general").endpoints)
            assert served == [0, 6]
            metrics = (await c.get("/metrics")).text
            assert 'qwen_router_replica_choices_total{model="general",outcome="affinity"} 5.0' in metrics
            slot = int(replicas.pop()[1])
            assert f'qwen_router_replica_requests_total{{model="general",replica="{slot}"}} 6.0' in metrics
    finally:
        a.stop()
        b.stop()
