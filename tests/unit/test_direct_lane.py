"""The direct lane of the generate endpoints (``serve.router.fastpath``): same answers as the routed app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from serve.router.fastpath import DIRECT, DirectLaneMiddleware
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict


@pytest.fixture
async def router(fake_engines: dict[str, FakeEngineServer]) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async with make_router(fleet_dict(), {n: e.url for n, e in fake_engines.items()}) as (c, app):
        yield c, app


async def test_generate_endpoints_take_the_direct_lane(router: Any) -> None:
    c, app = router
    assert any(m.cls is DirectLaneMiddleware for m in app.user_middleware)
    assert set(DIRECT) == {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"}
    seen: list[str] = []
    service = app.state.service
    handle = service.handle

    async def spy(request: Any, kind: str) -> Any:
        seen.append(kind)
        return await handle(request, kind)

    service.handle = spy
    r = await c.post("/v1/chat/completions", json={"model": "auto", "max_tokens": 2,
                                                   "messages": [{"role": "user", "content": "hi"}]},
                     headers={"x-request-id": "lane-1"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "lane-1"
    assert r.headers["x-qwen-task"] and r.headers["x-qwen-model"]
    assert seen == ["chat"]


async def test_direct_lane_errors_are_shaped_like_the_apps(router: Any) -> None:
    c, _ = router
    r = await c.post("/v1/chat/completions", content=b"{not json", headers={"x-request-id": "lane-2"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    assert r.headers["x-request-id"] == "lane-2"
    r = await c.post("/v1/messages", json={"model": "nope", "max_tokens": 4,
                                           "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "not_found_error"


async def test_other_methods_and_paths_still_go_through_fastapi(router: Any) -> None:
    c, _ = router
    assert (await c.get("/v1/chat/completions")).status_code == 405
    assert (await c.post("/v1/chat/completions/", json={})).status_code in (307, 404, 405)
    assert (await c.get("/health")).json() == {"status": "ok"}
