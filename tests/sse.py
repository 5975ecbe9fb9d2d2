"""Helpers for reading OpenAI SSE streams in tests (unit tests over FAKE engines and e2e tests alike)."""

from __future__ import annotations

import json
from typing import Any

import httpx


async def streamed_fields(client: httpx.AsyncClient, body: dict[str, Any], *fields: str) -> dict[str, str]:
    """POST ``body`` as a streamed chat request; the concatenation of each delta field over all events."""
    out = dict.fromkeys(fields, "")
    async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as s:
        async for line in s.aiter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    for f in fields:
                        out[f] += choice["delta"].get(f) or ""
    return out
