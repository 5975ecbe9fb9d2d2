"""Legacy ``guided_*`` request fields rewritten to ``structured_outputs`` (serve/router/compat.py), alone and in
the router over FAKE engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from serve.config import FleetConfig
from serve.router.app import create_app
from serve.router.compat import upgrade_legacy_fields
from serve.router.protocol import InvalidRequestError
from serve.router.upstream import StaticRegistry
from tests.unit.conftest import FakeEngineServer, fleet_dict

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(("field", "value", "key"), [
    ("guided_json", SCHEMA, "json"), ("guided_regex", "[0-9]+", "regex"),
    ("guided_choice", ["yes", "no"], "choice"), ("guided_grammar", "root ::= \"x\"", "grammar"),
])
def test_each_constraint_is_moved(field: str, value: Any, key: str) -> None:
    body = {"messages": [], field: value}
    assert upgrade_legacy_fields(body) == [f"{field}->structured_outputs.{key}"]
    assert body == {"messages": [], "structured_outputs": {key: value}}


def test_options_travel_with_a_constraint_and_backend_is_dropped() -> None:
    body = {"guided_json": SCHEMA, "guided_whitespace_pattern": r"\s?", "guided_decoding_backend": "xgrammar"}
    done = upgrade_legacy_fields(body)
    assert body == {"structured_outputs": {"json": SCHEMA, "whitespace_pattern": r"\s?"}}
    assert done == ["guided_json->structured_outputs.json",
                    "guided_whitespace_pattern->structured_outputs.whitespace_pattern",
                    "guided_decoding_backend->dropped"]


def test_options_alone_are_dropped_and_nothing_else_changes() -> None:
    body = {"guided_whitespace_pattern": " ", "guided_decoding_backend": "outlines", "temperature": 0.5}
    assert upgrade_legacy_fields(body) == ["guided_whitespace_pattern->dropped", "guided_decoding_backend->dropped"]
    assert body == {"temperature": 0.5}
    untouched = {"messages": [], "structured_outputs": {"choice": ["a"]}}
    assert upgrade_legacy_fields(untouched) == [] and untouched == {"messages": [], "structured_outputs": {"choice": ["a"]}}


def test_old_and_new_together_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as e:
        upgrade_legacy_fields({"guided_regex": "x", "structured_outputs": {"regex": "y"}})
    assert e.value.param == "guided_regex"


@pytest.fixture
async def client(fake_engines: dict[str, FakeEngineServer]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(FleetConfig.from_dict(fleet_dict()), StaticRegistry({n: [e.url] for n, e in fake_engines.items()}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://router") as c:
        yield c


async def test_router_names_the_rewrite(client: httpx.AsyncClient) -> None:
    body = {"model": "general", "messages": [{"role": "user", "content": "yes or no?"}], "max_tokens": 2,
            "guided_choice": ["yes", "no"]}
    r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and r.headers["x-qwen-compat"] == "guided_choice->structured_outputs.choice"
    plain = await client.post("/v1/chat/completions", json={**body, "guided_choice": None})
    assert plain.status_code == 200 and plain.headers["x-qwen-compat"] == "guided_choice->dropped"
    del body["guided_choice"]
    assert "x-qwen-compat" not in (await client.post("/v1/chat/completions", json=body)).headers
    both = {**body, "guided_json": SCHEMA, "structured_outputs": {"json": SCHEMA}}
    r = await client.post("/v1/chat/completions", json=both)
    assert r.status_code == 400 and r.json()["error"]["param"] == "guided_json"
