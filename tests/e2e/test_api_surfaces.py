"""The Responses API and Anthropic Messages on the real demo stack (vLLM's own implementations behind the
router), driven by the official ``openai`` and ``anthropic`` clients.

Random-weight models: assertions are about protocol, counts, routing and errors, never text.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.fleet import API_KEYS

pytestmark = pytest.mark.e2e

CODE = "Fix this Python:\n```python\ndef f(x):\n  return x[\n```"


def test_responses_auto_non_streamed_then_retrieved(client: Any) -> None:
    raw = client.responses.with_raw_response.create(model="auto", input=CODE, max_output_tokens=6)
    assert raw.headers["x-qwen-task"] == "code" and raw.headers["x-qwen-model"] == "qwen-coder"
    resp = raw.parse()
    # random weights rarely stop on their own: the budget ends the answer ("incomplete", max_output_tokens)
    assert resp.id.startswith("resp_") and resp.status in ("completed", "incomplete")
    assert resp.usage is not None and 0 < resp.usage.output_tokens <= 6 and resp.usage.input_tokens > 0
    got = client.responses.with_raw_response.retrieve(resp.id)
    assert got.parse().id == resp.id and got.headers["x-qwen-replica"] == raw.headers["x-qwen-replica"]
    assert got.headers["x-qwen-replica-reason"] == "stored"


def test_responses_streamed_with_instructions(client: Any) -> None:
    stream = client.responses.create(model="auto", instructions="You are a careful mathematician.",
                                     input=[{"role": "user", "content": "Prove that there are infinitely many primes."}],
                                     max_output_tokens=8, stream=True)
    events = [e.type for e in stream]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events or "response.reasoning_text.delta" in events


def test_responses_previous_response_id_reaches_the_storing_replica(client: Any) -> None:
    first = client.responses.with_raw_response.create(model="qwen3-moe", input="Hello", max_output_tokens=3)
    follow = client.responses.with_raw_response.create(model="auto", input="And then?", max_output_tokens=3,
                                                       previous_response_id=first.parse().id)
    assert follow.headers["x-qwen-model"] == "qwen3-moe"
    assert follow.headers["x-qwen-replica"] == first.headers["x-qwen-replica"], "two replicas: pinned"


def test_anthropic_messages_streamed_and_not(stack_url: str) -> None:
    from anthropic import Anthropic

    client = Anthropic(base_url=stack_url, api_key=API_KEYS[0], max_retries=0, timeout=120)
    raw = client.messages.with_raw_response.create(
        model="auto", max_tokens=6, messages=[{"role": "user", "content": CODE}])
    assert raw.headers["x-qwen-model"] == "qwen-coder"
    msg = raw.parse()
    assert msg.role == "assistant" and msg.type == "message" and 0 < msg.usage.output_tokens <= 6
    with client.messages.stream(model="qwen3-general", max_tokens=5,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = stream.get_final_message()
    assert final.role == "assistant" and 0 < final.usage.output_tokens <= 5
    count = client.messages.count_tokens(model="qwen3-general", messages=[{"role": "user", "content": "Hi"}])
    assert count.input_tokens > 0


def test_anthropic_errors_and_x_api_key(stack_url: str) -> None:
    body = {"model": "qwen3-general", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(stack_url + "/v1/messages", json=body, timeout=60)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(stack_url + "/v1/messages", json=body, headers={"x-api-key": API_KEYS[0]}, timeout=60)
    assert r.status_code == 200 and r.json()["type"] == "message"
    r = httpx.post(stack_url + "/v1/messages", json={**body, "max_tokens": None},
                   headers={"x-api-key": API_KEYS[0]}, timeout=60)
    assert r.status_code == 400 and r.json()["type"] == "error"
