"""LoRA adapters beside a base deployment, through the real stack (tiny random peft adapter on tiny Qwen3).

The demo fleet serves ``qwen3-general:tiny-sql`` (alias ``qwen-sql``): the engine registers it statically
(vLLM ``lora_modules``) under that id, so the answer's ``model`` is the id the client sent.
"""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e

BASE = "qwen3-general"
ADAPTER = "qwen3-general:tiny-sql"
ALIAS = "qwen-sql"
MESSAGES = [{"role": "user", "content": "List every customer who ordered twice in May."}]


def test_models_list_the_adapter_and_its_alias(client) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in client.models.list().data}
    assert {BASE, ADAPTER, ALIAS} <= ids


def test_chat_with_adapter_counts_and_names_it(http: httpx.Client) -> None:
    body = {"model": ADAPTER, "messages": MESSAGES, "max_tokens": 9, "ignore_eos": True}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["x-qwen-model"] == BASE
    data = r.json()
    assert data["model"] == ADAPTER
    assert data["choices"][0]["finish_reason"] == "length"
    usage = data["usage"]
    assert usage["completion_tokens"] == 9
    # Same tokenizer and chat template as the base: the prompt counts the same.
    base = http.post("/v1/chat/completions", json={**body, "model": BASE, "max_tokens": 1}).json()
    assert usage["prompt_tokens"] == base["usage"]["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 9


def test_adapter_changes_the_greedy_output(client) -> None:  # type: ignore[no-untyped-def]
    def greedy(model: str) -> list[str]:
        r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8, temperature=0,
                                           logprobs=True, extra_body={"ignore_eos": True})
        assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content is not None
        return [t.token for t in r.choices[0].logprobs.content]

    base, adapted = greedy(BASE), greedy(ADAPTER)
    assert len(base) == len(adapted) == 8
    assert base != adapted, "the random adapter must change the base model's greedy tokens"


def test_streaming_with_adapter_usage_matches(client) -> None:  # type: ignore[no-untyped-def]
    stream = client.chat.completions.create(
        model=ADAPTER, messages=MESSAGES, max_tokens=10, stream=True, logprobs=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    tokens, usage, models = 0, None, set()
    for chunk in stream:
        models.add(chunk.model)
        usage = chunk.usage or usage
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                tokens += len(ch.logprobs.content)
    assert models == {ADAPTER}
    assert usage is not None and usage.completion_tokens == tokens == 10


def test_alias_reaches_the_adapter(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json={"model": ALIAS, "messages": MESSAGES, "max_tokens": 3})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == ADAPTER
    assert r.headers["x-qwen-model"] == BASE


def test_unknown_adapter_is_404(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model=f"{BASE}:no-such-adapter", messages=MESSAGES, max_tokens=3)
    assert err.value.status_code == 404
    assert "does not exist" in str(err.value)
