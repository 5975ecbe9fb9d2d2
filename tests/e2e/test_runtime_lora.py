"""A LoRA adapter loaded at run time on a deployment with two engine replicas, through the real stack.

A tiny random peft adapter is built for the e2e fleet's two-replica deployment (tiny Qwen3, ``lora.runtime``),
loaded through the router's admin endpoint (this test runs on localhost), served by both replicas, listed in
``/v1/models``, then unloaded: a 404 after.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.fleet import TWO_REPLICAS

pytestmark = pytest.mark.e2e

ADAPTER = f"{TWO_REPLICAS}:runtime-sql"


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory, stack_url: str) -> Path:
    from serve.config import FleetConfig
    from serve.lora import build_tiny_lora
    from tests.e2e.fleet import e2e_fleet

    base = FleetConfig.from_dict(e2e_fleet(), check_paths=False).deployment(TWO_REPLICAS).model_source
    return build_tiny_lora(base, tmp_path_factory.mktemp("lora") / "runtime-sql", rank=8, seed=7)


def ask(http: httpx.Client, model: str, i: int) -> httpx.Response:
    # distinct first turns: each is a new prefix, so prefix affinity spreads them over the replicas
    return http.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": f"Query {i}: list the tables."}],
        "max_tokens": 3, "ignore_eos": True})


def test_load_both_replicas_answer_then_unload(stack_url: str, http: httpx.Client, adapter_dir: Path) -> None:
    admin = httpx.Client(base_url=stack_url, timeout=180)  # localhost: no admin key needed
    replicas = {r["replica"] for r in httpx.get(stack_url + "/v1/status", timeout=10).json()["endpoints"][TWO_REPLICAS]}
    assert len(replicas) == 2
    assert ask(http, ADAPTER, 0).status_code == 404

    r = admin.post("/v1/load_lora_adapter", json={"lora_name": ADAPTER, "lora_path": str(adapter_dir)})
    assert r.status_code == 200, r.text
    assert r.json()["replicas"] == {rid: "ok" for rid in replicas}
    assert ADAPTER in {m["id"] for m in http.get("/v1/models").json()["data"]}

    served: set[str] = set()
    for i in range(40):
        resp = ask(http, ADAPTER, i)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model"] == ADAPTER and body["usage"]["completion_tokens"] == 3
        assert resp.headers["x-qwen-model"] == TWO_REPLICAS
        served.add(resp.headers["x-qwen-replica"])
        if served == replicas:
            break
    assert served == replicas, f"both replicas answer for the adapter, got {served}"
    listing = admin.get("/admin/lora").json()
    assert [a["id"] for a in listing["adapters"]] == [ADAPTER]
    assert all(listing["adapters"][0]["replicas"].values())

    r = admin.post("/v1/unload_lora_adapter", json={"lora_name": ADAPTER})
    assert r.status_code == 200 and set(r.json()["replicas"].values()) == {"ok"}
    resp = ask(http, ADAPTER, 99)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    assert ADAPTER not in {m["id"] for m in http.get("/v1/models").json()["data"]}
    assert ask(http, TWO_REPLICAS, 100).status_code == 200  # the base model is untouched


def test_admin_needs_localhost_or_admin_key_and_checks_the_path(http: httpx.Client, stack_url: str) -> None:
    # the API key is not an admin key, but this client is on localhost: the path check answers
    r = http.post("/v1/load_lora_adapter", json={"lora_name": ADAPTER, "lora_path": "/nonexistent/adapter"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "lora_path"
    r = http.post("/v1/load_lora_adapter", json={"lora_name": "qwen3-moe:x", "lora_path": "/tmp"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "runtime_lora_disabled"
