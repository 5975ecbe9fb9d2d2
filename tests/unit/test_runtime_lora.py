"""Run-time LoRA over FAKE engines: the admin endpoints, routing only to replicas that confirmed the load,
the engine-side sync (replicas started later), and the KV record helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve.config import FleetConfig
from serve.lora_record import MemoryAdapterStore, WantedAdapter
from serve.lora_runtime import ReplicaAdapters
from serve.router.app import create_app
from serve.router.upstream import StaticRegistry
from tests.unit.conftest import FakeEngineServer, fleet_dict

BASE = "general"
MSGS = [{"role": "user", "content": "hello"}]


def adapter_dir(root: Path, name: str = "sql", rank: int = 8) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "adapter_config.json").write_text(json.dumps({"r": rank, "target_modules": ["q_proj"]}))
    (d / "adapter_model.safetensors").write_bytes(b"fake")
    return d


def runtime_fleet(**security: Any) -> dict[str, Any]:
    data = fleet_dict()
    for dep in data["deployments"]:
        if dep["name"] == BASE:
            dep["lora"] = {"runtime": True, "max_lora_rank": 8}
    if security:
        data["security"] = security
    return data


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[FakeEngineServer]]:
    servers = [FakeEngineServer(BASE, ttft_s=0.001, tokens_per_s=5000.0) for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
async def stack(replicas: list[FakeEngineServer], tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Path]]:
    for s in replicas:
        s.app.state.fake_engine.adapters.clear()
    urls = {BASE: [replicas[0].url, replicas[1].url], "coder": [replicas[2].url], "moe": [replicas[2].url]}
    app = create_app(FleetConfig.from_dict(runtime_fleet()), StaticRegistry(urls))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5555)), base_url="http://router") as c:
        yield c, app, tmp_path


async def chat_replicas(c: httpx.AsyncClient, model: str, n: int = 8) -> set[str]:
    seen = set()
    for _ in range(n):
        r = await c.post("/v1/chat/completions", json={"model": model, "messages": MSGS, "max_tokens": 2})
        assert r.status_code == 200, r.text
        assert r.json()["model"] == model
        seen.add(r.headers["x-qwen-replica"])
    return seen


async def test_load_on_every_replica_route_then_unload(stack: Any, replicas: list[FakeEngineServer]) -> None:
    c, _, tmp = stack
    name = f"{BASE}:sql"
    assert (await c.post("/v1/chat/completions", json={"model": name, "messages": MSGS})).status_code == 404
    r = await c.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter_dir(tmp))})
    assert r.status_code == 200, r.text
    assert r.json() == {"lora_name": name, "replicas": {"r0": "ok", "r1": "ok"}}
    assert all(name in s.app.state.fake_engine.adapters for s in replicas[:2])
    ids = {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert name in ids
    assert await chat_replicas(c, name) == {"r0", "r1"}, "both replicas answer for the adapter"
    listing = (await c.get("/admin/lora")).json()
    assert listing["adapters"] == [{"id": name, "path": str(tmp / "sql"), "replicas": {"r0": True, "r1": True}}]
    r = await c.post("/v1/unload_lora_adapter", json={"lora_name": name})
    assert r.status_code == 200 and r.json()["replicas"] == {"r0": "ok", "r1": "ok"}
    assert not any(name in s.app.state.fake_engine.adapters for s in replicas[:2])
    r = await c.post("/v1/chat/completions", json={"model": name, "messages": MSGS})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert name not in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert (await c.post("/v1/unload_lora_adapter", json={"lora_name": name})).status_code == 404


async def test_a_replica_that_has_not_confirmed_never_gets_the_adapter(stack: Any,
                                                                       replicas: list[FakeEngineServer]) -> None:
    c, app, tmp = stack
    name = f"{BASE}:late"
    svc = app.state.service
    await c.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter_dir(tmp, "late"))})
    # a third replica joins (scale-up) without the adapter yet
    svc.registry._urls[BASE]["r2"] = replicas[2].url
    await svc.registry.refresh()
    assert await chat_replicas(c, name, 12) <= {"r0", "r1"}
    assert "r2" in await chat_replicas(c, BASE, 12), "the new replica serves the base model"
    # the new replica loads the wanted set at start and publishes it: now it may serve the adapter
    keeper = ReplicaAdapters(BASE, "r2", replicas[2].url, static=set(), store=svc.adapters.store)
    assert await keeper.sync() == {"late"}
    await keeper.close()
    svc.adapters.store.publish_loaded(BASE, "r2", {"late"})
    await svc.adapters.refresh()
    assert "r2" in await chat_replicas(c, name, 12)
    del svc.registry._urls[BASE]["r2"]
    await svc.registry.refresh()


async def test_no_confirmed_replica_is_503_not_a_wrong_replica(stack: Any) -> None:
    c, app, _ = stack
    svc = app.state.service
    svc.adapters.store.want(WantedAdapter(BASE, "pending", "/x"))  # wanted (by another router) but not loaded
    await svc.adapters.refresh()
    assert f"{BASE}:pending" in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    r = await c.post("/v1/chat/completions", json={"model": f"{BASE}:pending", "messages": MSGS})
    assert r.status_code == 503 and r.headers["retry-after"]
    svc.adapters.store.drop(BASE, "pending")


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"lora_name": "general", "lora_path": "/x"}, "lora_name", "invalid_value"),
    ({"lora_name": "coder:sql", "lora_path": "/x"}, "lora_name", "runtime_lora_disabled"),
    ({"lora_name": "general:bad name", "lora_path": "/x"}, "lora_name", "invalid_value"),
    ({"lora_name": "general:sql", "lora_path": "/nonexistent/adapter"}, "lora_path", "adapter_not_found"),
    ({"lora_name": "general:sql", "lora_path": 5}, "lora_path", "invalid_value"),
    ({"lora_name": "general:big", "lora_path": "RANK64"}, "lora_path", "rank_too_large"),
])
async def test_bad_load_requests_are_400_naming_the_field(stack: Any, body: dict[str, Any], param: str,
                                                          code: str) -> None:
    c, _, tmp = stack
    if body["lora_path"] == "RANK64":
        body = {**body, "lora_path": str(adapter_dir(tmp, "big", rank=64))}
    r = await c.post("/v1/load_lora_adapter", json=body)
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert (e["param"], e["code"]) == (param, code)


async def test_admin_endpoints_need_localhost_or_an_admin_key(replicas: list[FakeEngineServer], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_KEYS", "ops:admin-secret")
    monkeypatch.setenv("API_KEYS", "user:user-secret")
    data = runtime_fleet(admin_keys_env="ADMIN_KEYS", api_keys_env="API_KEYS")
    app = create_app(FleetConfig.from_dict(data), StaticRegistry({BASE: [replicas[0].url]}))
    body = {"lora_name": f"{BASE}:remote", "lora_path": str(adapter_dir(tmp_path, "remote"))}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 4000)), base_url="http://router") as c:
        for headers in ({}, {"authorization": "Bearer user-secret"}, {"authorization": "Bearer wrong"}):
            r = await c.post("/v1/load_lora_adapter", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "admin_only"
        r = await c.post("/v1/load_lora_adapter", json=body, headers={"authorization": "Bearer admin-secret"})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/unload_lora_adapter", json={"lora_name": body["lora_name"]},
                         headers={"authorization": "Bearer admin-secret"})
        assert r.status_code == 200


async def test_engine_refusal_rolls_the_load_back(stack: Any) -> None:
    c, app, tmp = stack
    r = await c.post("/v1/load_lora_adapter", json={"lora_name": f"{BASE}:bad",
                                                    "lora_path": str(adapter_dir(tmp, "bad.refused"))})
    e = r.json()["error"]
    assert r.status_code == 400 and e["code"] == "adapter_refused" and "does not match the model" in e["message"]
    assert f"{BASE}:bad" not in {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert app.state.service.adapters.store.wanted() == []


async def test_already_loaded_on_the_engine_counts_as_loaded(stack: Any, replicas: list[FakeEngineServer]) -> None:
    c, _, tmp = stack
    for s in replicas[:2]:
        s.app.state.fake_engine.adapters.add(f"{BASE}:dup")  # the engines already have a same-named adapter
    r = await c.post("/v1/load_lora_adapter", json={"lora_name": f"{BASE}:dup",
                                                    "lora_path": str(adapter_dir(tmp, "dup"))})
    assert r.status_code == 200  # "already loaded" counts as loaded
    r = await c.post("/v1/unload_lora_adapter", json={"lora_name": f"{BASE}:dup"})
    assert r.status_code == 200


def test_fleets_without_runtime_lora_have_no_admin_routes() -> None:
    app = create_app(FleetConfig.from_dict(fleet_dict()), StaticRegistry({}))
    paths = {getattr(r, "path", "") for r in app.routes}
    assert "/v1/load_lora_adapter" not in paths and "/v1/embeddings" in paths


# --- engine side -------------------------------------------------------------------------------------
async def test_replica_sync_loads_wanted_unloads_unwanted_keeps_static(replicas: list[FakeEngineServer]) -> None:
    fake = replicas[2].app.state.fake_engine
    fake.adapters.clear()
    fake.adapters.update({f"{BASE}:static", f"{BASE}:old"})
    store = MemoryAdapterStore()
    store.want(WantedAdapter(BASE, "a", "/a"))
    store.want(WantedAdapter(BASE, "b", "/b"))
    store.want(WantedAdapter("coder", "c", "/c"))  # another deployment's: not this replica's business
    keeper = ReplicaAdapters(BASE, "r9", replicas[2].url, static={"static"}, store=store)
    assert await keeper.sync() == {"a", "b"}
    assert fake.adapters == {f"{BASE}:static", f"{BASE}:a", f"{BASE}:b"}
    assert store.loaded() == {(BASE, "r9"): {"a", "b"}}
    store.drop(BASE, "a")
    assert await keeper.sync() == {"b"}
    assert fake.adapters == {f"{BASE}:static", f"{BASE}:b"}
    await keeper.close()
    assert store.loaded() == {}
    fake.adapters.clear()


def test_replica_adapters_only_with_runtime_lora(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.lora_runtime import replica_adapters

    kwargs = {"enable_lora": True, "lora_modules": [{"name": "g:sql", "path": "/p", "base_model_name": "g"}]}
    monkeypatch.delenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", raising=False)
    assert replica_adapters(kwargs, "g", "r", "http://x") is None
    monkeypatch.setenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")
    keeper = replica_adapters(kwargs, "g", "r", "http://x")
    assert keeper is not None and keeper.static == {"sql"}
    assert replica_adapters({}, "g", "r", "http://x") is None


async def test_replica_sync_never_raises() -> None:
    keeper = ReplicaAdapters(BASE, "r", "http://127.0.0.1:9", static=set(), store=MemoryAdapterStore())
    keeper.loaded = {"kept"}
    assert await keeper.sync() == {"kept"}  # engine unreachable: logged, last known set kept
    await keeper.close()


async def test_replica_sync_covers_its_engine_frontends(replicas: list[FakeEngineServer]) -> None:
    # replicas[0] stands in for the replica's own app (the router already loaded "a" there), replicas[1] for
    # one of its engine frontends (which keeps its own adapter list and has nothing yet).
    own, front = (r.app.state.fake_engine for r in replicas[:2])
    own.adapters.clear()
    front.adapters.clear()
    own.adapters.update({f"{BASE}:a", f"{BASE}:gone"})
    front.adapters.add(f"{BASE}:gone")
    store = MemoryAdapterStore()
    store.want(WantedAdapter(BASE, "a", "/a"))
    keeper = ReplicaAdapters(BASE, "r7", replicas[0].url, static=set(), store=store,
                             frontend_urls=[replicas[1].url])
    assert await keeper.sync() == {"a"}
    assert own.adapters == front.adapters == {f"{BASE}:a"}
    assert store.loaded() == {(BASE, "r7"): {"a"}}
    await keeper.close()
    own.adapters.clear()
    front.adapters.clear()


async def test_replica_with_an_unreachable_frontend_confirms_nothing(replicas: list[FakeEngineServer]) -> None:
    store = MemoryAdapterStore()
    store.want(WantedAdapter(BASE, "a", "/a"))
    keeper = ReplicaAdapters(BASE, "r8", replicas[0].url, static=set(), store=store,
                             frontend_urls=["http://127.0.0.1:9"])
    assert await keeper.sync() == set()  # logged; the router sends "a" only to replicas that confirmed it
    assert store.loaded() == {}
    await keeper.close()
    replicas[0].app.state.fake_engine.adapters.clear()


async def test_router_load_reaches_every_frontend_of_a_replica(stack: Any, replicas: list[FakeEngineServer]) -> None:
    c, app, tmp = stack
    registry = app.state.service.registry
    # replica r0 of BASE serves through two frontends (replicas[1] and replicas[2]); r1 is replicas[1] itself
    registry._frontends[(BASE, "r0")] = (replicas[1].url.rstrip("/"), replicas[2].url.rstrip("/"))
    await registry.refresh()
    r = await c.post("/v1/load_lora_adapter", json={"lora_name": f"{BASE}:sql", "lora_path": str(adapter_dir(tmp))})
    assert r.status_code == 200, r.text
    for s in replicas:
        assert f"{BASE}:sql" in s.app.state.fake_engine.adapters
    registry._frontends.clear()
