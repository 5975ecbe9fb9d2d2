"""serve.router.validate: every bad parameter is a 400 naming it; good bodies pass; request deadlines."""

from __future__ import annotations

from typing import Any

import pytest

from serve.config import InputLimits
from serve.router.protocol import InvalidRequestError
from serve.router.validate import request_timeout, validate_body

LIMITS = InputLimits(max_messages=4, max_tokens_cap=1000, max_n=2, max_stop_sequences=3,
                     request_timeout_s=60, max_request_timeout_s=30)
USER = [{"role": "user", "content": "hi"}]


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": USER, **kw}


GOOD: list[dict[str, Any]] = [
    chat(),
    chat(max_tokens=1000, n=2, temperature=0, top_p=1, stop=["a", "b", "c"], seed=-1, stream=True,
         stream_options={"include_usage": True}, logprobs=True, top_logprobs=5, user="u1"),
    chat(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "content": "42", "name": "calc"}]),
    chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}], tool_choice="auto"),
    chat(logit_bias={"17": -100, "9": 2.5}, response_format={"type": "json_object"},
         chat_template_kwargs={"enable_thinking": False}, ignore_eos=True, vendor_extra={"x": 1}),
    chat(messages=[{"role": "user", "content": "\u202e\u200b\u0000 zero-width & bidi \U0001f600"}]),
]


@pytest.mark.parametrize("body", GOOD)
def test_good_chat_bodies_pass(body: dict[str, Any]) -> None:
    validate_body(body, "chat", LIMITS)


@pytest.mark.parametrize("prompt", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_good_prompts_pass(prompt: Any) -> None:
    validate_body({"prompt": prompt, "logprobs": 2, "echo": False}, "completions", LIMITS)


BAD: list[tuple[dict[str, Any], str]] = [
    (chat(model=5), "model"),
    (chat(messages=[]), "messages"),
    (chat(messages="hi"), "messages"),
    (chat(messages=USER * 5), "messages"),
    (chat(messages=["hi"]), "messages[0]"),
    (chat(messages=[{"role": "hacker", "content": "x"}]), "messages[0].role"),
    (chat(messages=[{"role": None, "content": "x"}]), "messages[0].role"),
    (chat(messages=[{"role": "user"}]), "messages[0].content"),
    (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (chat(messages=[{"role": "user", "content": [{"type": "evil"}]}]), "messages[0].content[0]"),
    (chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]), "messages[0].content[0].text"),
    (chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content[0].image_url.url"),
    (chat(messages=[{"role": "user", "content": "x", "name": 3}]), "messages[0].name"),
    (chat(messages=[{"role": "assistant", "content": "x", "tool_calls": "f"}]), "messages[0].tool_calls"),
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_tokens=1001), "max_tokens"),
    (chat(max_tokens=10**30), "max_tokens"),
    (chat(max_tokens="5"), "max_tokens"),
    (chat(max_tokens=5.0), "max_tokens"),
    (chat(max_completion_tokens=-1), "max_completion_tokens"),
    (chat(n=3), "n"),
    (chat(n=True), "n"),
    (chat(temperature=float("nan")), "temperature"),
    (chat(temperature=float("inf")), "temperature"),
    (chat(temperature=-0.1), "temperature"),
    (chat(top_p=0), "top_p"),
    (chat(top_k="all"), "top_k"),
    (chat(presence_penalty=3), "presence_penalty"),
    (chat(seed=2**64), "seed"),
    (chat(top_logprobs=21), "top_logprobs"),
    (chat(stream="yes"), "stream"),
    (chat(stream_options=[]), "stream_options"),
    (chat(stream_options={"include_usage": "y"}), "stream_options.include_usage"),
    (chat(logprobs=1), "logprobs"),
    (chat(stop=["a"] * 4), "stop"),
    (chat(stop=["a"] * 5000), "stop"),
    (chat(stop=[1]), "stop"),
    (chat(stop="x" * 10) | {"stop": ["y" * 5000]}, "stop"),
    (chat(tools="f"), "tools"),
    (chat(tools=[{"type": "function"}]), "tools[0].function.name"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}] * 300), "tools"),
    (chat(tool_choice="sometimes"), "tool_choice"),
    (chat(logit_bias=[1]), "logit_bias"),
    (chat(logit_bias={"abc": 1}), "logit_bias"),
    (chat(logit_bias={"1": 1000}), "logit_bias"),
    (chat(logit_bias={"\u0661": 1}), "logit_bias"),  # arabic-indic digit: isdigit() but not a token id
    (chat(response_format={"type": "xml"}), "response_format.type"),
    (chat(response_format="json"), "response_format"),
    (chat(chat_template_kwargs={"enable_thinking": "yes"}), "chat_template_kwargs.enable_thinking"),
    (chat(ignore_eos="true"), "ignore_eos"),
    (chat(user=7), "user"),
    # unhashable values where a closed set is expected (found by schemathesis: a TypeError became a 500)
    (chat(messages=[{"role": ["user"], "content": "x"}]), "messages[0].role"),
    (chat(messages=[{"role": "user", "content": [{"type": ["text"]}]}]), "messages[0].content[0]"),
    (chat(messages=[{"role": "user", "content": [{"type": {"a": 1}}]}]), "messages[0].content[0]"),
    (chat(tool_choice=["auto"]), "tool_choice"),
    (chat(response_format={"type": ["json_object"]}), "response_format.type"),
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_bad_chat_bodies_are_400_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_body(body, "chat", LIMITS)
    assert info.value.status == 400 and info.value.param == param


@pytest.mark.parametrize("prompt", ["", [], [-1], [True], ["a", 1], [[]], None, {"p": 1}])
def test_bad_prompts(prompt: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_body({"prompt": prompt}, "completions", LIMITS)
    assert info.value.param == "prompt"


def test_completions_logprobs_is_a_count() -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_body({"prompt": "x", "logprobs": True}, "completions", LIMITS)
    assert info.value.param == "logprobs"


@pytest.mark.parametrize(("header", "expected"), [
    (None, 60.0), ("5", 5.0), ("0.25", 0.25), ("1000", 30.0), ("-3", 60.0), ("nan", 60.0), ("inf", 60.0),
    ("abc", 60.0), ("", 60.0),
])
def test_request_timeout_header_is_capped(header: str | None, expected: float) -> None:
    headers = {} if header is None else {"x-request-timeout": header}
    assert request_timeout(headers, LIMITS) == expected
