"""Compatibility shims against the real Qwen3 engine (vLLM's ``qwen3`` reasoning parser): a second router in
this process, over the stack's own ``qwen3-general`` replica, with ``router.mirror_reasoning_content`` on.

Random weights: the assertions are about fields and their equality, never about text.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.fleet import BUSY, ENGINE_SECRET, e2e_fleet
from tests.router_kit import make_router
from tests.sse import streamed_fields

pytestmark = pytest.mark.e2e


async def test_reasoning_is_mirrored_as_reasoning_content(stack_url: str) -> None:

    rows = httpx.get(stack_url + "/v1/status", timeout=10).json()["endpoints"][BUSY]
    data = e2e_fleet()
    data["security"] = {"require_api_key": False}
    data["router"]["mirror_reasoning_content"] = True
    body = {"model": BUSY, "messages": [{"role": "user", "content": "Why is the sky blue?"}], "max_tokens": 12,
            "chat_template_kwargs": {"enable_thinking": True}}
    async with make_router(data, {BUSY: rows[0]["url"]}, timeout=60, engine_secret=ENGINE_SECRET) as (c, _):
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text[:300]
        msg = r.json()["choices"][0]["message"]
        # vLLM's qwen3 parser puts the text before </think> in `reasoning`; the router mirrors it
        assert msg.get("reasoning") and msg["reasoning_content"] == msg["reasoning"]
        streamed = await streamed_fields(c, body, "reasoning", "reasoning_content")
        assert streamed["reasoning"] and streamed["reasoning_content"] == streamed["reasoning"]
