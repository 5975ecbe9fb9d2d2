"""FAKE pooling and LoRA endpoints for the fake OpenAI server (:mod:`loadtest.fake_server`).

Like vLLM's OpenAI server on the pooling runner, in shape only: ``/v1/embeddings`` and ``/pooling`` answer a
deterministic unit vector per input (a hash of the text, ``embedding_dim`` long, ``float`` or ``base64``),
``/score`` / ``/rerank`` a hash-derived score in [0, 1] per pair, ``/classify`` one probability; usage counts
words. ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` keep the engine's adapter set, which
``/v1/models`` lists and the chat endpoints accept as ``model`` (a ``lora_path`` ending in ``.refused`` is
refused, as vLLM refuses an adapter that does not fit the model). No inference happens: FAKE, for unit tests
and router-only benchmarks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text`` (FAKE embedding)."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.blake2b(f"{counter}:{text}".encode(), digest_size=32).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = out[:dim]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return []


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}},
                        status_code=status)


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0}


def _score(a: str, b: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{a}\x00{b}".encode(), digest_size=4).digest(), "big") / 2**32


def add_pooling_routes(app: FastAPI, models: list[str], adapters: set[str], embedding_dim: int) -> None:
    """Add the FAKE pooling and LoRA routes to the fake server app.

    Args:
        app: The fake server app.
        models: Served model ids (the first answers in ``model``).
        adapters: The engine's LoRA adapter ids, changed by the load/unload routes.
        embedding_dim: Length of the FAKE embeddings.
    """

    async def body_of(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def encode(vec: list[float], fmt: str | None) -> Any:
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if fmt == "base64" else vec

    async def embeddings(request: Request) -> Response:
        body = await body_of(request)
        texts = _texts((body or {}).get("input"))
        if body is None or not texts:
            return _error(400, "'input' is required")
        dim = int(body.get("dimensions") or embedding_dim)
        data = [{"index": i, "object": "embedding", "embedding": encode(fake_vector(t, dim), body.get("encoding_format"))}
                for i, t in enumerate(texts)]
        n = sum(len(t.split()) for t in texts)
        return JSONResponse({"id": f"embd-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": body.get("model") or models[0], "data": data, "usage": _usage(n)})

    async def pooling(request: Request) -> Response:
        body = await body_of(request)
        texts = _texts((body or {}).get("input"))
        if body is None or not texts:
            return _error(400, "'input' is required")
        data = [{"index": i, "object": "pooling", "data": fake_vector(t, embedding_dim)} for i, t in enumerate(texts)]
        return JSONResponse({"id": f"pool-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": body.get("model") or models[0], "data": data,
                             "usage": _usage(sum(len(t.split()) for t in texts))})

    async def classify(request: Request) -> Response:
        body = await body_of(request)
        texts = _texts((body or {}).get("input"))
        if body is None or not texts:
            return _error(400, "'input' is required")
        data = [{"index": i, "label": "LABEL_0", "probs": [_score(t, "")], "num_classes": 1}
                for i, t in enumerate(texts)]
        return JSONResponse({"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": body.get("model") or models[0], "data": data,
                             "usage": _usage(sum(len(t.split()) for t in texts))})

    async def score(request: Request) -> Response:
        body = await body_of(request) or {}
        queries = _texts(body.get("queries", body.get("text_1", body.get("data_1"))))
        docs = _texts(body.get("documents", body.get("items", body.get("text_2", body.get("data_2")))))
        if not queries or not docs:
            return _error(400, "'queries' and 'documents' are required")
        pairs = list(zip(queries * len(docs) if len(queries) == 1 else queries, docs, strict=False))
        data = [{"index": i, "object": "score", "score": _score(q, d)} for i, (q, d) in enumerate(pairs)]
        return JSONResponse({"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": body.get("model") or models[0], "data": data,
                             "usage": _usage(sum(len(q.split()) + len(d.split()) for q, d in pairs))})

    async def rerank(request: Request) -> Response:
        body = await body_of(request) or {}
        query, docs = body.get("query"), _texts(body.get("documents"))
        if not isinstance(query, str) or not docs:
            return _error(400, "'query' and 'documents' are required")
        results = sorted(({"index": i, "document": {"text": d}, "relevance_score": _score(query, d)}
                          for i, d in enumerate(docs)), key=lambda r: -float(r["relevance_score"]))  # type: ignore[arg-type]
        top_n = int(body.get("top_n") or 0)
        n = sum(len(query.split()) + len(d.split()) for d in docs)
        return JSONResponse({"id": f"rerank-{uuid.uuid4().hex}", "model": body.get("model") or models[0],
                             "usage": {"prompt_tokens": n, "total_tokens": n},
                             "results": results[:top_n] if top_n else results})

    async def load_lora(request: Request) -> Response:
        body = await body_of(request) or {}
        name = body.get("lora_name")
        if not isinstance(name, str) or not isinstance(body.get("lora_path"), str):
            return _error(400, "'lora_name' and 'lora_path' are required")
        if name in adapters:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        if body["lora_path"].endswith(".refused"):  # lets tests make the engine refuse an adapter
            return _error(400, f"Loading lora {name} failed: the adapter does not match the model.")
        adapters.add(name)
        return Response(f"Success: LoRA adapter '{name}' added successfully.", media_type="text/plain")

    async def unload_lora(request: Request) -> Response:
        name = (await body_of(request) or {}).get("lora_name")
        if name not in adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.")
        adapters.discard(str(name))
        return Response(f"Success: LoRA adapter '{name}' removed successfully.", media_type="text/plain")

    app.add_api_route("/v1/embeddings", embeddings, methods=["POST"])
    app.add_api_route("/pooling", pooling, methods=["POST"])
    app.add_api_route("/classify", classify, methods=["POST"])
    for path in ("/score", "/v1/score"):
        app.add_api_route(path, score, methods=["POST"])
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        app.add_api_route(path, rerank, methods=["POST"])
    app.add_api_route("/v1/load_lora_adapter", load_lora, methods=["POST"])
    app.add_api_route("/v1/unload_lora_adapter", unload_lora, methods=["POST"])
