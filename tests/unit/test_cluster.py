"""Multi-node pieces without Ray: cluster address, placement, deployment versions, config validation, and the
router app swapped in place (serve/hotswap.py) over FAKE apps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from serve.cluster import (
    HEAD_NODE_RESOURCE,
    engine_bundles,
    engine_version,
    resolve_address,
    router_actor_options,
    router_version,
)
from serve.config import ConfigError, FleetConfig
from serve.hotswap import Lifespan, RouterHost, SwappableApp
from tests.multinode.fleet import EXTRA, MODEL, POOL, multinode_fleet


def fleet(**ray: Any) -> FleetConfig:
    data = multinode_fleet(8000)
    data["ray"].update(ray)
    return FleetConfig.from_dict(data)


def test_address_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None, fleet()) is None  # nothing given: the stack starts its own head
    assert resolve_address(None, fleet(address="10.0.0.5:6379")) == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert resolve_address(None, fleet(address="10.0.0.5:6379")) == "auto"
    assert resolve_address("ray://head:10001", fleet(address="10.0.0.5:6379")) == "ray://head:10001"


def test_engine_bundles_carry_the_pool_label() -> None:
    f = fleet()
    assert engine_bundles(f.deployment(MODEL)) == [{"CPU": 1.0, POOL: 1.0}]
    gpu = FleetConfig.from_dict({**multinode_fleet(8000), "deployments": [
        {"name": "g", "model_path": "Qwen/Qwen3-8B", "accelerator": {"type": "gpu", "count": 2,
                                                                     "resources": {"h200-pool": 1}},
         "engine": {"tensor_parallel_size": 2}}]})
    assert engine_bundles(gpu.deployments[0]) == [{"GPU": 1.0, "h200-pool": 1.0}, {"GPU": 1.0}]
    plain = FleetConfig.from_dict({**multinode_fleet(8000), "deployments": [
        {"name": "g", "model_path": "Qwen/Qwen3-8B", "accelerator": {"type": "gpu"}}]})
    assert engine_bundles(plain.deployments[0]) is None  # Ray Serve LLM's own GPU bundles


def test_router_placement() -> None:
    assert router_actor_options(fleet())["resources"] == {HEAD_NODE_RESOURCE: 0.001}
    anywhere = router_actor_options(fleet(router_placement="any", router_resources={"cpu-pool": 1}))
    assert anywhere["resources"] == {"cpu-pool": 1} and anywhere["num_cpus"] == 1


def test_versions_change_only_with_what_they_cover() -> None:
    one, two = FleetConfig.from_dict(multinode_fleet(8000)), FleetConfig.from_dict(multinode_fleet(8000, extra=True))
    # Adding a deployment (and an alias) changes neither the existing engine's version nor the router's.
    assert engine_version(one.deployment(MODEL), one) == engine_version(two.deployment(MODEL), two)
    assert router_version(one) == router_version(two)
    changed = multinode_fleet(8000)
    changed["deployments"][0]["engine"]["max_model_len"] = 512  # a new engine argument
    other = FleetConfig.from_dict(changed)
    assert engine_version(other.deployment(MODEL), other) != engine_version(one.deployment(MODEL), one)
    assert engine_version(two.deployment(EXTRA), two) != engine_version(two.deployment(MODEL), two)
    assert router_version(fleet(router_placement="any")) != router_version(one)


@pytest.mark.parametrize(("patch", "field"), [
    ({"accelerator": {"type": "cpu", "resources": {"CPU": 2}}}, "accelerator.resources"),
    ({"accelerator": {"type": "cpu", "resources": {POOL: 0}}}, "accelerator.resources"),
    ({"accelerator": {"type": "cpu", "resources": {"bad name": 1}}}, "accelerator.resources"),
])
def test_bad_engine_resources_name_the_field(patch: dict[str, Any], field: str) -> None:
    data = multinode_fleet(8000)
    data["deployments"][0].update(patch)
    with pytest.raises(ConfigError, match=rf"deployments\[{MODEL}\]\.{field}"):
        FleetConfig.from_dict(data)


@pytest.mark.parametrize(("ray", "field"), [
    ({"router_resources": {"GPU": 1}}, "ray.router_resources"),
    ({"router_placement": "worker"}, "ray.router_placement"),
    ({"gcs_fault_tolerance": {"redis_address": "redis"}}, "ray.gcs_fault_tolerance.redis_address"),
    ({"gcs_fault_tolerance": {"redis_address": "r:6379", "redis_password_secret": "nokey"}},
     "ray.gcs_fault_tolerance.redis_password_secret"),
    ({"address": ""}, "ray.address"),
])
def test_bad_ray_settings_name_the_field(ray: dict[str, Any], field: str) -> None:
    data = multinode_fleet(8000)
    data["ray"].update(ray)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        FleetConfig.from_dict(data)


# --- the router app swapped in place -----------------------------------------------------------------
def fake_app(name: str, events: list[str], gate: asyncio.Event | None = None) -> FastAPI:
    """A FAKE router app: answers its name (after ``gate`` opens for /slow), logs its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append(f"start {name}")
        yield
        events.append(f"stop {name}")

    app = FastAPI(lifespan=lifespan)

    @app.get("/who")
    async def who() -> dict[str, str]:
        return {"app": name}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        if gate is not None:
            await gate.wait()
        return {"app": name}

    return app


async def test_swap_serves_new_requests_on_the_new_app_and_drains_the_old() -> None:
    events: list[str] = []
    gate = asyncio.Event()
    swappable = SwappableApp(fake_app("v1", events, gate))
    server = Lifespan(swappable)  # what Ray Serve does with the replica's ASGI app
    await server.startup()
    transport = httpx.ASGITransport(app=swappable)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        assert (await client.get("/who")).json() == {"app": "v1"}
        in_flight = asyncio.ensure_future(client.get("/slow"))
        await asyncio.sleep(0.05)
        await swappable.swap(fake_app("v2", events))
        assert (await client.get("/who")).json() == {"app": "v2"}
        assert events == ["start v1", "start v2"]  # the old app still serves its request
        gate.set()
        assert (await in_flight).json() == {"app": "v1"}  # finished on the app it started on
        for _ in range(50):
            if "stop v1" in events:
                break
            await asyncio.sleep(0.05)
        assert events == ["start v1", "start v2", "stop v1"]
    await server.shutdown()
    assert events[-1] == "stop v2"


async def test_failed_startup_keeps_the_old_app() -> None:
    events: list[str] = []
    swappable = SwappableApp(fake_app("v1", events))
    await Lifespan(swappable).startup()

    @contextlib.asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("no session")
        yield

    with pytest.raises(RuntimeError):
        await swappable.swap(FastAPI(lifespan=broken))
    transport = httpx.ASGITransport(app=swappable)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        assert (await client.get("/who")).json() == {"app": "v1"}


async def test_router_host_applies_only_a_changed_fleet() -> None:
    events: list[str] = []
    built: list[str] = []

    def build(f: FleetConfig) -> FastAPI:
        built.append(",".join(d.name for d in f.deployments))
        return fake_app(built[-1], events)

    first = FleetConfig.from_dict(multinode_fleet(8000))
    host = RouterHost(first, build)
    await Lifespan(host.app).startup()
    assert await host.reconfigure({"fleet": first.model_dump(mode="json")}) is False  # Serve's first call
    changed = FleetConfig.from_dict(multinode_fleet(8000, extra=True))
    assert await host.reconfigure({"fleet": changed.model_dump(mode="json")}) is True
    assert built == [MODEL, f"{MODEL},{EXTRA}"] and host.fleet.deployment(EXTRA).name == EXTRA


# --- joined clusters: state and `down` ------------------------------------------------------------------
def test_down_on_a_joined_cluster_removes_only_the_app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from serve import stack

    monkeypatch.setattr(stack, "STATE_DIR", tmp_path)
    monkeypatch.setattr(stack, "STATE_FILE", tmp_path / "stack.json")
    calls: list[str] = []
    monkeypatch.setattr(stack, "remove_app", lambda address, out: calls.append(f"remove {address}"))
    monkeypatch.setattr(stack, "stop_ray", lambda out: calls.append("stop ray"))
    stack.save_state(fleet(), address="10.0.0.5:6379", owns_cluster=False)
    assert stack.load_state()["url"] == "http://10.0.0.5:8000"  # router on the head of that cluster
    stack.shutdown(io.StringIO())
    assert calls == ["remove 10.0.0.5:6379"] and not (tmp_path / "stack.json").exists()


def test_public_host() -> None:
    from serve import stack

    assert stack.public_host(fleet(), None) == "127.0.0.1"
    assert stack.public_host(fleet(), "ray://head.svc:10001") == "head.svc"
    assert stack.public_host(fleet(router_placement="any"), "10.0.0.5:6379") == "127.0.0.1"
    bound = FleetConfig.from_dict({**multinode_fleet(8000), "host": "10.1.1.1"})
    assert stack.public_host(bound, "10.0.0.5:6379") == "10.1.1.1"


# --- a local Ray head the stack did not start ------------------------------------------------------------
def test_owns_local_head_only_for_the_head_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve import stack

    monkeypatch.setattr(stack, "local_head_id", lambda: "127.0.0.1:6379")
    assert stack.owns_local_head({"owns_cluster": True, "gcs": "127.0.0.1:6379"})
    assert not stack.owns_local_head({"owns_cluster": True, "gcs": "127.0.0.1:40000"})  # replaced since
    assert not stack.owns_local_head({"url": "http://127.0.0.1:8000"})  # no record: someone else's head
    assert not stack.owns_local_head({"owns_cluster": True, "address": "10.0.0.5:6379", "gcs": None})
    assert stack.owns_local_head({"owns_cluster": True})  # a state file from before the address was kept


def test_down_leaves_a_local_head_it_did_not_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from serve import stack

    monkeypatch.setattr(stack, "STATE_DIR", tmp_path)
    monkeypatch.setattr(stack, "STATE_FILE", tmp_path / "stack.json")
    monkeypatch.setattr(stack, "ray_running", lambda: True)
    calls: list[str] = []
    monkeypatch.setattr(stack, "remove_app", lambda address, out: calls.append(f"remove {address}"))
    monkeypatch.setattr(stack, "stop_ray", lambda out: calls.append("stop ray"))
    monkeypatch.setattr(stack, "local_head_id", lambda: "127.0.0.1:40000")  # the head the stack started
    stack.save_state(fleet(), owns_cluster=True)
    assert stack.load_state()["gcs"] == "127.0.0.1:40000"
    monkeypatch.setattr(stack, "local_head_id", lambda: "127.0.0.1:6379")  # someone else's head now
    out = io.StringIO()
    stack.shutdown(out)
    assert calls == ["remove None"] and "left running" in out.getvalue()
    calls.clear()
    stack.shutdown(io.StringIO())  # no state at all: still only the application
    assert calls == ["remove None"]


def test_up_on_a_foreign_local_head_does_not_claim_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import argparse
    import io

    from serve import cli, stack

    monkeypatch.setattr(stack, "STATE_FILE", tmp_path / "none.json")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(stack, "ray_running", lambda: True)
    monkeypatch.setattr(stack, "connect", lambda *a, **k: None)
    monkeypatch.setattr(stack, "app_running", lambda: False)
    monkeypatch.setattr(stack, "wait_port_free", lambda *a, **k: None)
    monkeypatch.setattr(stack, "start_ray", lambda *a, **k: False)  # reuses the running head
    out = io.StringIO()
    address, owns, update = cli._prepare_ray(argparse.Namespace(address=None), fleet(), out)
    assert (address, owns, update) == (None, False, False)
    assert "leaves it running" in out.getvalue()
