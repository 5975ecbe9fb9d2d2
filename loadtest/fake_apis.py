"""FAKE Responses API and Anthropic Messages endpoints for the FAKE engine (unit tests, router benchmarks).

Like the rest of ``loadtest.fake_server`` they do no inference: filler words, ``max_output_tokens`` /
``max_tokens`` of them, with the real wire shapes (the Responses API's objects and stream events, Anthropic's
message and stream events) and usage. Stored responses (``store``, default true) can be retrieved by id,
from this FAKE engine only, as vLLM keeps them in the replica that created them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

WORD = " ok"


def _words(n: int) -> str:
    return WORD * n


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, len(json.dumps(body.get("input") or body.get("messages") or "")) // 4)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def attach(app: FastAPI, models: list[str]) -> None:
    """Add ``/v1/responses`` (+ retrieve), ``/v1/messages`` and ``/v1/messages/count_tokens`` to ``app``."""
    store: dict[str, dict[str, Any]] = {}

    def response_object(body: dict[str, Any], rid: str, n: int, status: str) -> dict[str, Any]:
        p = _prompt_tokens(body)
        return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
                "model": body.get("model") or models[0],
                "output": [{"type": "message", "id": "msg_" + rid[5:], "role": "assistant", "status": status,
                            "content": [{"type": "output_text", "text": _words(n), "annotations": []}]}],
                "usage": {"input_tokens": p, "output_tokens": n, "total_tokens": p + n}}

    @app.post("/v1/responses")
    async def responses(request: Request) -> Response:
        body = json.loads(await request.body())
        prev = body.get("previous_response_id")
        if prev and prev not in store:
            return JSONResponse({"error": {"message": f"Response {prev} not found", "type": "invalid_request_error",
                                           "param": "previous_response_id", "code": 404}}, status_code=404)
        n = int(body.get("max_output_tokens") or 8)
        rid = "resp_" + uuid.uuid4().hex
        done = response_object(body, rid, n, "completed")
        if body.get("store", True):
            store[rid] = done
        if not body.get("stream"):
            return JSONResponse(done)

        async def events() -> AsyncIterator[bytes]:
            yield _event("response.created", {"type": "response.created", "sequence_number": 0,
                                              "response": {**done, "status": "in_progress", "output": []}}).encode()
            for i in range(n):
                yield _event("response.output_text.delta", {"type": "response.output_text.delta", "delta": WORD,
                                                            "sequence_number": i + 1, "output_index": 0,
                                                            "content_index": 0, "item_id": "msg_x"}).encode()
            yield _event("response.completed", {"type": "response.completed", "sequence_number": n + 1,
                                                "response": done}).encode()
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/responses/{rid}")
    async def retrieve(rid: str) -> Response:
        if rid not in store:
            return JSONResponse({"error": {"message": f"Response {rid} not found", "type": "invalid_request_error",
                                           "param": None, "code": 404}}, status_code=404)
        return JSONResponse(store[rid])

    @app.post("/v1/responses/{rid}/cancel")
    async def cancel(rid: str) -> Response:
        if rid not in store:
            return JSONResponse({"error": {"message": "not found", "type": "invalid_request_error", "param": None,
                                           "code": 404}}, status_code=404)
        return JSONResponse({**store[rid], "status": "cancelled"})

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body = json.loads(await request.body())
        n = int(body.get("max_tokens") or 8)
        p = _prompt_tokens(body)
        mid = "msg_" + uuid.uuid4().hex
        model = body.get("model") or models[0]
        done = {"id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": _words(n)}], "stop_reason": "max_tokens",
                "stop_sequence": None, "usage": {"input_tokens": p, "output_tokens": n}}
        if not body.get("stream"):
            return JSONResponse(done)

        async def events() -> AsyncIterator[bytes]:
            start = {**done, "content": [], "stop_reason": None, "usage": {"input_tokens": p, "output_tokens": 0}}
            yield _event("message_start", {"type": "message_start", "message": start}).encode()
            yield _event("content_block_start", {"type": "content_block_start", "index": 0,
                                                 "content_block": {"type": "text", "text": ""}}).encode()
            for _ in range(n):
                yield _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": WORD}}).encode()
            yield _event("content_block_stop", {"type": "content_block_stop", "index": 0}).encode()
            yield _event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                                           "usage": {"output_tokens": n}}).encode()
            yield _event("message_stop", {"type": "message_stop"}).encode()
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        return JSONResponse({"input_tokens": _prompt_tokens(json.loads(await request.body()))})
