"""The OpenAI surface of the real demo stack, driven by the official ``openai`` client.

Random-weight models: assertions are about protocol, counts, routing and errors, never text.
"""

from __future__ import annotations

import os

import httpx
import openai
import pytest

from tests.e2e.fleet import ENGINE_SECRET

pytestmark = pytest.mark.e2e

GENERAL = "qwen3-general"
MOE = "qwen3-moe"


def test_models_lists_deployments_and_virtual_models(client) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in client.models.list().data}
    assert {GENERAL, MOE, "qwen-coder", "auto"} <= ids


@pytest.mark.parametrize("model", [GENERAL, MOE])
def test_chat_non_streaming_counts(client, model: str) -> None:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello there"}],
                                       max_tokens=7, extra_body={"ignore_eos": True})
    assert r.model == model
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 7
    assert r.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", [GENERAL, MOE])
def test_chat_streaming_usage_equals_streamed_tokens(client, model: str) -> None:  # type: ignore[no-untyped-def]
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to ten"}], max_tokens=12, stream=True,
        logprobs=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    tokens = 0
    usage = None
    finish = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                tokens += len(ch.logprobs.content)
            finish = ch.finish_reason or finish
    assert usage is not None, "stream_options.include_usage must give a usage chunk"
    assert usage.completion_tokens == tokens == 12
    assert finish == "length"


def test_completions_non_streaming_and_streaming(client) -> None:  # type: ignore[no-untyped-def]
    r = client.completions.create(model=GENERAL, prompt="def add(a, b):", max_tokens=5,
                                  extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    stream = client.completions.create(model=GENERAL, prompt="Once upon a time", max_tokens=6, stream=True,
                                       logprobs=1, stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True})
    tokens, usage = 0, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.tokens:
                tokens += len(ch.logprobs.tokens)
    assert usage is not None and usage.completion_tokens == tokens == 6


def test_n_two_gives_two_choices(client) -> None:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model=GENERAL, messages=[{"role": "user", "content": "hi"}], n=2,
                                       max_tokens=4)
    assert sorted(c.index for c in r.choices) == [0, 1]


def test_unknown_model_is_openai_404(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model="qwen-does-not-exist", messages=[{"role": "user", "content": "x"}])
    err = ei.value.body
    assert isinstance(err, dict) and err.get("param") == "model" and "does not exist" in err["message"]


@pytest.mark.parametrize("payload", [b'{"model": "auto", "messages": [', b"\xff\xfe", b"[]", b"",
                                     b'{"model": "auto", "messages": []}',
                                     b'{"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}',
                                     b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], '
                                     b'"max_tokens": -3}'],
                         ids=["truncated", "not-utf8", "array", "empty", "no-messages", "bad-role", "neg-max"])
def test_malformed_body_is_openai_400(http: httpx.Client, payload: bytes) -> None:
    r = http.post("/v1/chat/completions", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert r.headers.get("x-request-id")


def test_still_serves_after_bad_requests(client, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        http.post("/v1/chat/completions", content=b"{broken", headers={"content-type": "application/json"})
    r = client.chat.completions.create(model=MOE, messages=[{"role": "user", "content": "still there?"}],
                                       max_tokens=3)
    assert r.choices[0].message is not None
    assert http.get("/ready").status_code == 200


@pytest.mark.parametrize("legacy", [True, False])
def test_structured_choice_holds_also_in_the_pre_012_spelling(client, legacy: bool) -> None:  # type: ignore[no-untyped-def]
    """A choice constraint binds even a random-weight model: the answer is one of the choices. The pre-0.12
    vLLM field (``guided_choice``, which the engine alone would ignore) is rewritten by the router."""
    constraint = {"guided_choice": ["yes", "no"]} if legacy else {"structured_outputs": {"choice": ["yes", "no"]}}
    raw = client.chat.completions.with_raw_response.create(
        model="qwen-coder", messages=[{"role": "user", "content": "Is 7 prime? Answer yes or no."}],
        max_tokens=8, extra_body=constraint)
    r = raw.parse()
    assert r.choices[0].message.content in {"yes", "no"}
    assert raw.headers.get("x-qwen-compat") == ("guided_choice->structured_outputs.choice" if legacy else None)


def test_tokenize_and_detokenize_through_the_router(http: httpx.Client) -> None:
    """The router's /tokenize answers with the chosen engine's own tokenizer and chat template: the same
    count as asking that engine directly; /detokenize inverts it."""
    body = {"model": GENERAL, "messages": [{"role": "user", "content": "Count the tokens of this sentence."}]}
    r = http.post("/tokenize", json=body)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-qwen-model"] == GENERAL
    engine_url = http.get("/v1/status").json()["endpoints"][GENERAL][0]["url"]
    from serve.security.engine_secret import ENV, HEADER

    direct = httpx.post(engine_url + "/tokenize", json=body, timeout=30,  # engines answer only with the secret
                        headers={HEADER: os.environ.get(ENV) or ENGINE_SECRET}).json()
    assert r.json()["count"] == direct["count"] == len(direct["tokens"]) > 8  # the chat template counts too
    prompt = {"model": GENERAL, "prompt": "Hello tokens"}
    ids = http.post("/tokenize", json=prompt).json()["tokens"]
    back = http.post("/detokenize", json={"model": GENERAL, "tokens": ids})
    assert back.status_code == 200 and back.json()["prompt"] == "Hello tokens"
