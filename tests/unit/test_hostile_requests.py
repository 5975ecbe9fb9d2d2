"""Requests a hostile or careless client can send: each gets a 4xx in the path's error shape (OpenAI's, or
Anthropic's on ``/v1/messages``), never a 5xx, over FAKE engines."""

from __future__ import annotations

import pytest

from serve.config import FleetConfig
from serve.security.guard import estimate_tokens
from tests.router_kit import make_router
from tests.unit.conftest import FakeEngineServer, fleet_dict

KEY = "sk-hostile-0123456789"
MSGS = [{"role": "user", "content": "hi"}]


def test_token_estimate_ignores_fields_of_other_apis() -> None:
    # n / best_of / max_tokens are validated only where their API defines them (chat, completions)
    for extra in ({"n": "x"}, {"best_of": [1]}, {"max_tokens": "x"}, {"max_completion_tokens": {}},
                  {"n": True}, {"n": -3}, {"max_tokens": 2.5}):
        assert estimate_tokens({"input": "hi", "max_output_tokens": 10, **extra}, 256) >= 10, extra
    assert estimate_tokens({"prompt": "x", "max_tokens": 10, "n": 3}, 256) >= 30
    assert estimate_tokens({"prompt": "x"}, 256) >= 256


@pytest.fixture
def limited_fleet(monkeypatch: pytest.MonkeyPatch) -> FleetConfig:
    monkeypatch.setenv("HOSTILE_KEYS", f"hostile:{KEY}")
    data = fleet_dict()
    data["security"] = {"require_api_key": True, "api_keys_env": "HOSTILE_KEYS",
                        "rate_limit": {"per_key": {"hostile": {"tokens_per_minute": 100_000}}}}
    return FleetConfig.from_dict(data)


async def test_foreign_fields_under_a_token_limit_are_no_500(fake_engines: dict[str, FakeEngineServer],
                                                             limited_fleet: FleetConfig) -> None:
    urls = {n: e.url for n, e in fake_engines.items()}
    async with make_router(limited_fleet, urls, client=("10.0.0.9", 1),
                           headers={"authorization": f"Bearer {KEY}"}) as (c, _):
        for path, body in (
                ("/v1/responses", {"model": "general", "input": "hi", "max_tokens": "x"}),
                ("/v1/responses", {"model": "general", "input": "hi", "best_of": [1]}),
                ("/v1/messages", {"model": "general", "messages": MSGS, "max_tokens": 3, "n": "x"}),
                ("/v1/messages", {"model": "general", "messages": MSGS, "max_tokens": 3,
                                  "max_completion_tokens": "x"})):
            r = await c.post(path, json=body)
            assert r.status_code < 500, (body, r.text)
