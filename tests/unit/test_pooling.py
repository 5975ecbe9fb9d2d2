"""Embeddings, pooling, score and rerank through the router over FAKE engines: dispatch by runner, model
choice, validation, admission, errors, and the unknown-path 404."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from serve.config import FleetConfig
from serve.router.app import create_app
from serve.router.endpoints import POOLING_PATHS
from serve.router.pooling import estimate_pooling_tokens, validate_pooling_body
from serve.router.upstream import StaticRegistry
from tests.unit.conftest import FakeEngineServer, fleet_dict

EMB_DIM = 128


def pooling_fleet(**security: Any) -> dict[str, Any]:
    data = fleet_dict()
    dep = {"accelerator": {"type": "cpu"}, "engine": {"max_model_len": 2048}, "max_ongoing_requests": 4,
           "max_queued_requests": 4}
    data["deployments"] += [
        {"name": "emb", "tiny": "qwen3_embedding", "model_path": "/nonexistent/emb", **dep},
        {"name": "rr", "tiny": "qwen3_reranker", "model_path": "/nonexistent/rr", **dep},
    ]
    data["router"]["aliases"]["qwen-embed"] = "emb"
    if security:
        data["security"] = security
    return data


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, FakeEngineServer]]:
    servers = {name: FakeEngineServer(name, ttft_s=0.002, tokens_per_s=2000.0, embedding_dim=EMB_DIM)
               for name in ("general", "coder", "moe", "emb", "rr")}
    yield servers
    for s in servers.values():
        s.stop()


async def _client(engines: dict[str, FakeEngineServer], data: dict[str, Any],
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(FleetConfig.from_dict(data), StaticRegistry({n: [e.url] for n, e in engines.items()}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router") as c:
        yield c, app


@pytest.fixture
async def router(engines: dict[str, FakeEngineServer]) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async for pair in _client(engines, pooling_fleet()):
        yield pair


def err(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return dict(body)


# --- dispatch by runner ---------------------------------------------------------------------------------
async def test_embeddings_auto_picks_the_embedding_model_with_headers(router: Any) -> None:
    c, _ = router
    for body in ({"input": ["hello world", "bye"]}, {"model": "auto", "input": "x"}, {"model": None, "input": "x"}):
        r = await c.post("/v1/embeddings", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["x-qwen-model"] == "emb" and r.headers["x-qwen-task"] == "embeddings"
        assert r.headers["x-qwen-route-reason"] == "embeddings: auto -> emb"
        assert r.headers["x-qwen-replica"] and r.headers["x-request-id"]
        assert all(len(d["embedding"]) == EMB_DIM for d in r.json()["data"])


async def test_base64_embeddings_are_relayed_byte_for_byte(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/embeddings", json={"model": "emb", "input": "x", "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(struct.unpack(f"<{EMB_DIM}f", raw)) == EMB_DIM


async def test_rerank_and_score_prefer_the_reranker_and_embedding_model_can_score(router: Any) -> None:
    c, _ = router
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        r = await c.post(path, json={"query": "q", "documents": ["a", "b", "c"], "top_n": 2})
        assert r.status_code == 200, r.text
        assert r.headers["x-qwen-model"] == "rr" and r.headers["x-qwen-task"] == "rerank"
        assert len(r.json()["results"]) == 2
    for path in ("/score", "/v1/score"):
        r = await c.post(path, json={"queries": "q", "documents": ["a", "b"]})
        assert r.status_code == 200 and r.headers["x-qwen-model"] == "rr" and len(r.json()["data"]) == 2
    r = await c.post("/score", json={"model": "emb", "text_1": "q", "text_2": ["a"]})
    assert r.status_code == 200 and r.headers["x-qwen-model"] == "emb"
    r = await c.post("/pooling", json={"model": "qwen-embed", "input": "x"})  # alias of a deployment
    assert r.status_code == 200 and r.headers["x-qwen-model"] == "emb"
    r = await c.post("/classify", json={"input": ["x", "y"]})
    assert r.status_code == 200 and r.headers["x-qwen-model"] == "rr" and len(r.json()["data"]) == 2


async def test_pooling_request_to_a_chat_model_is_400_naming_model(router: Any) -> None:
    c, _ = router
    e = err(await c.post("/v1/embeddings", json={"model": "general", "input": "x"}), 400)
    assert e["param"] == "model" and e["code"] == "wrong_model_type"
    assert "`general` is a chat model" in e["message"] and "emb" in e["message"]
    e = err(await c.post("/v1/embeddings", json={"model": "rr", "input": "x"}), 400)  # reranker: no embeddings
    assert e["param"] == "model" and "reranker" in e["message"]
    e = err(await c.post("/classify", json={"model": "emb", "input": "x"}), 400)
    assert e["param"] == "model"
    e = err(await c.post("/rerank", json={"model": "qwen-code", "query": "q", "documents": ["a"]}), 400)
    assert e["param"] == "model" and "task code" in e["message"]
    e = err(await c.post("/v1/embeddings", json={"model": "nope", "input": "x"}), 404)
    assert e["param"] == "model" and e["code"] == "model_not_found"


async def test_chat_to_an_embedding_model_is_400_and_auto_never_picks_it(router: Any) -> None:
    c, _ = router
    msgs = [{"role": "user", "content": "hello"}]
    e = err(await c.post("/v1/chat/completions", json={"model": "emb", "messages": msgs, "max_tokens": 2}), 400)
    assert e["param"] == "model" and e["code"] == "not_generative" and "embedding or score model" in e["message"]
    e = err(await c.post("/v1/completions", json={"model": "qwen-embed", "prompt": "x", "max_tokens": 2}), 400)
    assert e["param"] == "model"
    for _ in range(5):
        r = await c.post("/v1/chat/completions", json={"model": "auto", "messages": msgs, "max_tokens": 2})
        assert r.status_code == 200 and r.headers["x-qwen-model"] not in ("emb", "rr")


async def test_fleet_without_an_embedding_model_says_so(engines: dict[str, FakeEngineServer]) -> None:
    async for c, _ in _client(engines, fleet_dict()):
        e = err(await c.post("/v1/embeddings", json={"input": "x"}), 400)
        assert e["param"] == "model" and "No deployment of this fleet serves /v1/embeddings" in e["message"]


async def test_models_list_the_pooling_deployments(router: Any) -> None:
    c, _ = router
    ids = {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert {"emb", "rr"} <= ids


# --- validation ------------------------------------------------------------------------------------------
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/embeddings", {}, "input"),
    ("/v1/embeddings", {"input": ""}, "input"),
    ("/v1/embeddings", {"input": []}, "input"),
    ("/v1/embeddings", {"input": [1, "a"]}, "input"),
    ("/v1/embeddings", {"input": [[1], []]}, "input"),
    ("/v1/embeddings", {"input": [-1]}, "input"),
    ("/v1/embeddings", {"input": {"text": "x"}}, "input"),
    ("/v1/embeddings", {"input": ["x"] * 5000}, "input"),
    ("/v1/embeddings", {"input": "x", "dimensions": 0}, "dimensions"),
    ("/v1/embeddings", {"input": "x", "dimensions": 10**30}, "dimensions"),
    ("/v1/embeddings", {"input": "x", "dimensions": "8"}, "dimensions"),
    ("/v1/embeddings", {"input": "x", "encoding_format": "bytes"}, "encoding_format"),
    ("/v1/embeddings", {"input": "x", "stream": True}, "stream"),
    ("/v1/embeddings", {"input": "x", "model": 5}, "model"),
    ("/v1/embeddings", {"input": "x", "user": {"id": 1}}, "user"),
    ("/v1/embeddings", {"input": "x", "truncate_prompt_tokens": -5}, "truncate_prompt_tokens"),
    ("/v1/embeddings", {"input": "x", "use_activation": "yes"}, "use_activation"),
    ("/v1/embeddings", {"messages": "x"}, "messages"),
    ("/rerank", {"documents": ["a"]}, "query"),
    ("/rerank", {"query": "", "documents": ["a"]}, "query"),
    ("/rerank", {"query": "q", "documents": []}, "documents"),
    ("/rerank", {"query": "q", "documents": [None]}, "documents"),
    ("/rerank", {"query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
    ("/rerank", {"query": "q", "documents": ["a"] * 5000}, "documents"),
    ("/score", {"queries": "q"}, "documents"),
    ("/score", {"text_1": 5, "text_2": "x"}, "text_1"),
    ("/score", {"queries": "q", "documents": "d", "chat_template_kwargs": "x"}, "chat_template_kwargs"),
    ("/classify", {"input": None}, "input"),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD, ids=[f"{p}-{b}"[:60] for p, b, _ in BAD])
async def test_bad_pooling_bodies_are_400_naming_the_parameter(router: Any, path: str, body: dict[str, Any],
                                                               param: str) -> None:
    c, _ = router
    assert err(await c.post(path, json=body), 400)["param"] == param


@pytest.mark.parametrize("path", POOLING_PATHS)
@pytest.mark.parametrize("raw", [b"", b"{", b"[1]", b'"x"', b'{"input": "\xff"}'], ids=["empty", "trunc", "array",
                                                                                      "string", "utf8"])
async def test_malformed_bodies_are_400_on_every_pooling_path(router: Any, path: str, raw: bytes) -> None:
    c, _ = router
    err(await c.post(path, content=raw, headers={"content-type": "application/json"}), 400)


def test_validation_accepts_what_vllm_accepts() -> None:
    from serve.config import InputLimits

    limits = InputLimits()
    for path, body in [
        ("/v1/embeddings", {"input": "x", "dimensions": 32, "encoding_format": "base64", "user": "u"}),
        ("/v1/embeddings", {"input": [[1, 2], [3]], "truncate_prompt_tokens": -1}),
        ("/v1/embeddings", {"messages": [{"role": "user", "content": "x"}]}),
        ("/rerank", {"query": "q", "documents": ["a", {"content": [{"type": "text", "text": "b"}]}], "top_n": 0}),
        ("/score", {"queries": ["a", "b"], "documents": ["c", "d"], "chat_template_kwargs": {"instruction": "x"}}),
        ("/score", {"data_1": "a", "data_2": ["b"]}),
    ]:
        validate_pooling_body(body, path, limits)
    assert estimate_pooling_tokens({"input": [1, 2, 3]}) == 4
    assert estimate_pooling_tokens({"query": "x" * 400, "documents": ["y" * 400]}) > 200


# --- admission -----------------------------------------------------------------------------------------
async def test_keys_rate_limits_and_token_charge_apply(engines: dict[str, FakeEngineServer],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_KEYS", "k1:secret-1")
    security = {"require_api_key": True, "api_keys_env": "POOL_KEYS",
                "rate_limit": {"per_key": {"k1": {"requests_per_minute": 3, "tokens_per_minute": 1000}}}}
    async for c, _ in _client(engines, pooling_fleet(**security)):
        e = err(await c.post("/v1/embeddings", json={"input": "x"}), 401)
        assert e["code"] == "missing_api_key"
        auth = {"authorization": "Bearer secret-1"}
        r = await c.post("/v1/embeddings", json={"input": "a b c"}, headers=auth)
        assert r.status_code == 200
        # charged an estimate, settled with the engine's usage (3 words): almost the whole budget is left
        assert int(r.headers["x-ratelimit-remaining-tokens"]) >= 990
        big = err(await c.post("/v1/embeddings", json={"input": "x" * 8000}, headers=auth), 429)
        assert big["code"] == "tokens_exceed_limit"
        await c.post("/rerank", json={"query": "q", "documents": ["a"]}, headers=auth)
        r = await c.post("/rerank", json={"query": "q", "documents": ["a"]}, headers=auth)
        assert err(r, 429)["code"] == "rate_limit_exceeded" and "retry-after" in r.headers


async def test_draining_and_body_limit(engines: dict[str, FakeEngineServer]) -> None:
    async for c, app in _client(engines, pooling_fleet(limits={"max_body_bytes": 2048})):
        e = err(await c.post("/v1/embeddings", json={"input": "x" * 5000}), 413)
        assert e["code"] == "request_too_large"
        app.state.service.draining = True
        r = await c.post("/v1/embeddings", json={"input": "x"})
        assert err(r, 503)["code"] == "draining" and r.headers["retry-after"]


async def test_engine_down_is_503_not_500(engines: dict[str, FakeEngineServer]) -> None:
    data = pooling_fleet()
    urls = {n: [e.url] for n, e in engines.items()}
    urls["emb"] = ["http://127.0.0.1:9"]  # nothing listens there
    app = create_app(FleetConfig.from_dict(data), StaticRegistry(urls))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router") as c:
        r = await c.post("/v1/embeddings", json={"input": "x"})
        assert err(r, 503)["type"] == "service_unavailable_error" and r.headers["retry-after"]


# --- unknown paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/assistants"), ("GET", "/v1/files"),
                                              ("POST", "/v1/audio/transcriptions"), ("POST", "/invocations"),
                                              ("GET", "/nope/\u202eevil")])
async def test_unknown_paths_get_an_openai_404_naming_them(router: Any, method: str, path: str) -> None:
    c, _ = router
    e = err(await c.request(method, path, json={}), 404)
    assert e["type"] == "not_found_error" and e["code"] == "unknown_path"
    assert f"`{path.encode('ascii', 'replace').decode().replace(chr(63), '?')}`" in e["message"].replace(
        "\u202e", "?") or path[:5] in e["message"]
    assert "/v1/embeddings" in e["message"] and "/v1/chat/completions" in e["message"]


async def test_wrong_method_is_405_naming_it(router: Any) -> None:
    c, _ = router
    e = err(await c.get("/v1/embeddings"), 405)
    assert "GET" in e["message"] and "/v1/embeddings" in e["message"]


async def test_hostile_pooling_cases_never_get_a_5xx_from_the_router(router: Any) -> None:
    """The chaos bench's pooling cases over FAKE engines: the router's own answers are never 5xx (the e2e
    test sends the same cases to the real engines)."""
    from bench.chaos.hostile import pooling_cases

    c, _ = router
    for name, path, raw in pooling_cases():
        r = await c.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code < 500, (name, r.status_code, r.text[:200])
