"""Request validation before any engine sees the request: every bad parameter is a 400 naming it.

Checks the fields the OpenAI chat and completions APIs define (types, ranges, counts) plus the fleet's input
limits. Unknown fields pass through (vLLM's extra sampling parameters are welcome), but they too are checked
when their types are known. Everything here is a pure function of the body: cheap and unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from serve.errors import InvalidRequestError
from serve.router.facts import CHAT_PARTS, TEXT_PARTS

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

MAX_STOP_CHARS = 1024  # longest stop string
MAX_LOGIT_BIAS = 1024  # most logit_bias entries
MAX_TOOLS = 256  # most tool definitions
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema", "structural_tag"})
TOOL_CHOICES = frozenset({"none", "auto", "required"})
# Boolean flags of the OpenAI API and vLLM's extra parameters.
_BOOLS = ("echo", "ignore_eos", "skip_special_tokens", "include_stop_str_in_output", "add_generation_prompt",
          "continue_final_message", "parallel_tool_calls", "use_beam_search", "add_special_tokens",
          "spaces_between_special_tokens", "return_tokens_as_token_ids")

# name -> (low, high, integer?) ranges of numeric sampling parameters.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (1e-9, 1.0, False),
    "min_p": (0.0, 1.0, False),
    "top_k": (-1, 1_000_000, True),
    "presence_penalty": (-2.0, 2.0, False),
    "frequency_penalty": (-2.0, 2.0, False),
    "repetition_penalty": (1e-6, 10.0, False),
    "seed": (-(2**63), 2**63 - 1, True),
    "top_logprobs": (0, 20, True),
    "min_tokens": (0, 1_000_000, True),
    "best_of": (1, 8, True),
}


def _bad(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    """``value`` is one of the ``allowed`` strings (never hashes a list or dict: no TypeError)."""
    return isinstance(value, str) and value in allowed


def _number(body: Mapping[str, Any], name: str, lo: float, hi: float, integer: bool) -> None:
    v = body.get(name)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
        kind = "an integer" if integer else "a number"
        raise _bad(name, f"`{name}` must be {kind}.")
    if isinstance(v, float) and not math.isfinite(v):
        raise _bad(name, f"`{name}` must be a finite number.")
    if not lo <= v <= hi:
        raise _bad(name, f"`{name}` must be between {lo:g} and {hi:g}; got {v:g}.")


def _message_objects(body: Mapping[str, Any], limits: Any) -> list[tuple[str, dict[str, Any]]]:
    """``messages`` as ``(where, message)`` pairs: a non-empty array of objects within the fleet's limit."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("messages", "`messages` must be a non-empty array of message objects.")
    if len(msgs) > limits.max_messages:
        raise _bad("messages", f"Too many messages: {len(msgs)} (the limit is {limits.max_messages}).")
    out: list[tuple[str, dict[str, Any]]] = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(where, f"`{where}` must be an object.")
        out.append((where, m))
    return out


def _messages(body: Mapping[str, Any], limits: Any) -> None:
    for where, m in _message_objects(body, limits):
        role = m.get("role")
        if not _one_of(role, ROLES):
            raise _bad(f"{where}.role", f"`{where}.role` must be one of {', '.join(sorted(ROLES))}.")
        content = m.get("content")
        if content is None:
            if role not in ("assistant", "tool", "function"):
                raise _bad(f"{where}.content", f"`{where}.content` is required for role `{role}`.")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not _one_of(part.get("type"), CHAT_PARTS):
                    raise _bad(f"{where}.content[{j}]",
                               f"`{where}.content[{j}]` must be a content part with a known `type`.")
                _part(part, f"{where}.content[{j}]")
        elif not isinstance(content, str):
            raise _bad(f"{where}.content", f"`{where}.content` must be a string or an array of parts.")
        if m.get("name") is not None and not isinstance(m["name"], str):
            raise _bad(f"{where}.name", f"`{where}.name` must be a string.")
        calls = m.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise _bad(f"{where}.tool_calls", f"`{where}.tool_calls` must be an array of objects.")


def _part(part: Mapping[str, Any], where: str) -> None:
    """Check one content part's payload (text, or the URL object of an image/video/audio part)."""
    ptype = part["type"]
    if ptype in TEXT_PARTS and ptype not in ("thinking", "refusal") and not isinstance(part.get("text"), str):
        raise _bad(f"{where}.text", f"`{where}.text` must be a string.")
    if ptype in ("image_url", "video_url"):
        ref = part.get(ptype)
        url = ref.get("url") if isinstance(ref, dict) else None
        if not isinstance(url, str) or not url:
            raise _bad(f"{where}.{ptype}.url", f"`{where}.{ptype}.url` must be a non-empty string.")


def _prompt(body: Mapping[str, Any]) -> None:
    p = body.get("prompt")
    ok = (
        (isinstance(p, str) and p != "")
        or (isinstance(p, list) and p and (
            all(isinstance(x, str) for x in p)
            or all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in p)
            or all(isinstance(x, list) and x and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                       for t in x) for x in p)))
    )
    if not ok:
        raise _bad("prompt", "`prompt` must be a non-empty string, array of strings or array of token ids.")


def _stop(body: Mapping[str, Any], limits: Any) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop", "`stop` must be a string or an array of strings.")
    if len(stop) > limits.max_stop_sequences:
        raise _bad("stop", f"Too many stop sequences: {len(stop)} (the limit is {limits.max_stop_sequences}).")
    if any(len(x) > MAX_STOP_CHARS for x in stop):
        raise _bad("stop", f"A stop sequence is longer than {MAX_STOP_CHARS} characters.")


def _tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise _bad("tools", "`tools` must be an array of tool objects.")
        if len(tools) > MAX_TOOLS:
            raise _bad("tools", f"Too many tools: {len(tools)} (the limit is {MAX_TOOLS}).")
        for i, t in enumerate(tools):
            fn = t.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _bad(f"tools[{i}].function.name", f"`tools[{i}].function.name` must be a non-empty string.")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, dict) and not _one_of(choice, TOOL_CHOICES):
        raise _bad("tool_choice", "`tool_choice` must be none, auto, required or an object.")
    if isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        _named_tool(fn.get("name") if isinstance(fn, dict) else None, "tool_choice.function.name",
                    [t["function"]["name"] for t in tools or ()])


def _named_tool(name: Any, param: str, defined: list[str]) -> None:
    """A ``tool_choice`` that forces one tool must name one of the request's tools (else the engine has no
    schema to constrain the output with)."""
    if not isinstance(name, str) or not name:
        raise _bad(param, f"`{param}` must name the tool to call.")
    if name not in defined:
        raise _bad(param, f"`{param}` names `{name[:64]}`, which is not among the request's `tools`"
                          + (f" ({', '.join(n[:64] for n in defined[:16])})." if defined else " (there are none)."))


def _logit_bias(body: Mapping[str, Any]) -> None:
    lb = body.get("logit_bias")
    if not lb:
        return
    if len(lb) > MAX_LOGIT_BIAS:
        raise _bad("logit_bias", f"Too many logit_bias entries (the limit is {MAX_LOGIT_BIAS}).")
    for k, v in lb.items():
        if not k.isdigit() or not k.isascii():
            raise _bad("logit_bias", "`logit_bias` keys must be token ids.")
        if isinstance(v, bool) or not isinstance(v, int | float) or not -100 <= v <= 100:
            raise _bad("logit_bias", "`logit_bias` values must be numbers between -100 and 100.")


def request_timeout(headers: Mapping[str, str], limits: Any) -> float:
    """Seconds the request may take: ``limits.request_timeout_s``, or a shorter ``x-request-timeout`` header
    (capped by ``limits.max_request_timeout_s``; a malformed header is ignored)."""
    default = float(limits.request_timeout_s)
    raw = headers.get("x-request-timeout")
    if not raw:
        return default
    try:
        asked = float(raw)
    except ValueError:
        return default
    if not math.isfinite(asked) or asked <= 0:
        return default
    return min(asked, float(getattr(limits, "max_request_timeout_s", default)))


def _model(body: Mapping[str, Any]) -> None:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or len(model) > 256):
        raise _bad("model", "`model` must be a string naming a model.")


def validate_body(body: dict[str, Any], kind: str, limits: Any) -> None:
    """Validate a chat (``kind="chat"``) or completions body against the OpenAI schema and fleet limits.

    Args:
        body: The parsed JSON object.
        kind: ``chat`` or ``completions``.
        limits: The fleet's :class:`serve.config.InputLimits`.

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    _model(body)
    if kind == "chat":
        _messages(body, limits)
    else:
        _prompt(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("stream", "`stream` must be a boolean.")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise _bad("stream_options", "`stream_options` must be an object.")
    for name in ("max_tokens", "max_completion_tokens"):
        _number(body, name, 1, limits.max_tokens_cap, True)
    _number(body, "n", 1, limits.max_n, True)
    for name, (lo, hi, integer) in _RANGES.items():
        _number(body, name, lo, hi, integer)
    lp = body.get("logprobs")
    if lp is not None:
        if kind == "chat" and not isinstance(lp, bool):
            raise _bad("logprobs", "`logprobs` must be a boolean.")
        if kind == "completions":
            _number(body, "logprobs", 0, 20, True)
    _stop(body, limits)
    _tools(body)
    for name in _BOOLS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(name, f"`{name}` must be a boolean.")
    if so is not None and so.get("include_usage") is not None and not isinstance(so["include_usage"], bool):
        raise _bad("stream_options.include_usage", "`stream_options.include_usage` must be a boolean.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("user", "`user` must be a string.")
    for name in ("response_format", "chat_template_kwargs", "logit_bias"):
        v = body.get(name)
        if v is not None and not isinstance(v, dict):
            raise _bad(name, f"`{name}` must be an object.")
    _logit_bias(body)
    rf = body.get("response_format")
    if rf is not None and not _one_of(rf.get("type"), RESPONSE_FORMATS):
        raise _bad("response_format.type", f"`response_format.type` must be one of {', '.join(sorted(RESPONSE_FORMATS))}.")
    ctk = body.get("chat_template_kwargs")
    if ctk and "enable_thinking" in ctk and not isinstance(ctk["enable_thinking"], bool):
        raise _bad("chat_template_kwargs.enable_thinking", "`enable_thinking` must be a boolean.")


#: Most token ids accepted by ``/detokenize``.
MAX_DETOKENIZE_IDS = 1_000_000


def validate_token_body(body: dict[str, Any], kind: str, limits: Any) -> None:
    """Validate a ``/tokenize`` (``messages`` or ``prompt``) or ``/detokenize`` (``tokens``) body.

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    _model(body)
    if kind == "detokenize":
        tokens = body.get("tokens")
        if (not isinstance(tokens, list) or len(tokens) > MAX_DETOKENIZE_IDS
                or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens)):
            raise _bad("tokens", "`tokens` must be an array of non-negative token ids.")
    elif "messages" in body:
        _messages(body, limits)
    else:
        _prompt(body)


def validate_request(body: dict[str, Any], kind: str, limits: Any) -> None:
    """Validate a body of any request kind the router serves (one entry point for the preamble).

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    if kind.startswith("/"):  # embeddings, pooling, classify, score, rerank
        from serve.router.pooling import validate_pooling_body

        validate_pooling_body(body, kind, limits)
    elif kind in ("tokenize", "detokenize"):
        validate_token_body(body, kind, limits)
    elif kind == "responses":
        validate_responses(body, limits)
    elif kind in ("messages", "count_tokens"):
        validate_messages(body, limits, count_only=kind == "count_tokens")
    else:
        validate_body(body, kind, limits)


# --- the Responses API ----------------------------------------------------------------------------------
RESPONSE_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning",
                                 "item_reference", "mcp_call", "mcp_approval_response"})


def validate_responses(body: dict[str, Any], limits: Any) -> None:
    """Validate a ``POST /v1/responses`` body (the fields the router reads, plus the fleet's limits).

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    _model(body)
    items = body.get("input")
    if isinstance(items, str):
        if not items:
            raise _bad("input", "`input` must be a non-empty string or an array of input items.")
    elif isinstance(items, list) and items:
        if len(items) > limits.max_messages:
            raise _bad("input", f"Too many input items: {len(items)} (the limit is {limits.max_messages}).")
        for i, item in enumerate(items):
            where = f"input[{i}]"
            if not isinstance(item, dict):
                raise _bad(where, f"`{where}` must be an object.")
            itype = item.get("type", "message")
            if not _one_of(itype, RESPONSE_ITEM_TYPES):
                raise _bad(f"{where}.type", f"`{where}.type` must be one of {', '.join(sorted(RESPONSE_ITEM_TYPES))}.")
            if itype == "message":
                if not _one_of(item.get("role"), ROLES):
                    raise _bad(f"{where}.role", f"`{where}.role` must be one of {', '.join(sorted(ROLES))}.")
                content = item.get("content")
                if isinstance(content, list):
                    for j, part in enumerate(content):
                        if not isinstance(part, dict) or not _one_of(part.get("type"), CHAT_PARTS):
                            raise _bad(f"{where}.content[{j}]",
                                       f"`{where}.content[{j}]` must be a content part with a known `type`.")
                        _part(part, f"{where}.content[{j}]")
                elif not isinstance(content, str):
                    raise _bad(f"{where}.content", f"`{where}.content` must be a string or an array of parts.")
            else:
                _response_item(item, itype, where)
    else:
        raise _bad("input", "`input` must be a non-empty string or an array of input items.")
    for name in ("instructions", "previous_response_id", "user"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _bad(name, f"`{name}` must be a string.")
    for name in ("stream", "store", "background", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(name, f"`{name}` must be a boolean.")
    _number(body, "max_output_tokens", 1, limits.max_tokens_cap, True)
    for name in ("temperature", "top_p", "top_k", "seed"):
        lo, hi, integer = _RANGES.get(name, (-1, 2**31, True))
        _number(body, name, lo, hi, integer)
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
                              or len(tools) > MAX_TOOLS):
        raise _bad("tools", f"`tools` must be an array of at most {MAX_TOOLS} tool objects.")
    functions: list[str] = []
    for i, t in enumerate(tools or ()):
        if t.get("type") == "function":  # the Responses API's function tools carry their name at the top
            if not isinstance(t.get("name"), str) or not t["name"]:
                raise _bad(f"tools[{i}].name", f"`tools[{i}].name` must be a non-empty string.")
            functions.append(t["name"])
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, dict) and not _one_of(choice, TOOL_CHOICES):
        raise _bad("tool_choice", "`tool_choice` must be none, auto, required or an object.")
    if isinstance(choice, dict) and choice.get("type") == "function":
        _named_tool(choice.get("name"), "tool_choice.name", functions)
    for name in ("reasoning", "text", "metadata"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise _bad(name, f"`{name}` must be an object.")


#: String fields an input item of each type must carry (the ids that tie a tool call to its output).
_ITEM_FIELDS: dict[str, tuple[str, ...]] = {"function_call": ("call_id", "name", "arguments"),
                                            "function_call_output": ("call_id",), "item_reference": ("id",)}


def _response_item(item: Mapping[str, Any], itype: str, where: str) -> None:
    """Check the fields of a Responses input item other than a message."""
    for name in _ITEM_FIELDS.get(itype, ()):
        if not isinstance(item.get(name), str):
            raise _bad(f"{where}.{name}", f"`{where}.{name}` must be a string.")
    if itype == "function_call_output" and not isinstance(item.get("output"), str | list):
        raise _bad(f"{where}.output", f"`{where}.output` must be a string or an array of content parts.")


# --- Anthropic Messages ------------------------------------------------------------------------------
ANTHROPIC_ROLES = frozenset({"user", "assistant"})
ANTHROPIC_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
ANTHROPIC_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking",
                              "redacted_thinking"})


def validate_messages(body: dict[str, Any], limits: Any, *, count_only: bool = False) -> None:
    """Validate an Anthropic ``POST /v1/messages`` (or ``/v1/messages/count_tokens``) body.

    Raises:
        InvalidRequestError: The first problem found, naming its parameter.
    """
    _model(body)
    for where, m in _message_objects(body, limits):
        if not _one_of(m.get("role"), ANTHROPIC_ROLES):
            raise _bad(f"{where}.role", f"`{where}.role` must be `user` or `assistant`.")
        content = m.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not _one_of(block.get("type"), ANTHROPIC_BLOCKS):
                    raise _bad(f"{where}.content[{j}]",
                               f"`{where}.content[{j}]` must be a content block with a known `type`.")
                if block["type"] == "text" and not isinstance(block.get("text"), str):
                    raise _bad(f"{where}.content[{j}].text", f"`{where}.content[{j}].text` must be a string.")
        elif not isinstance(content, str):
            raise _bad(f"{where}.content", f"`{where}.content` must be a string or an array of content blocks.")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise _bad("system", "`system` must be a string or an array of text blocks.")
    for j, block in enumerate(system if isinstance(system, list) else ()):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _bad(f"system[{j}]", f"`system[{j}]` must be a text block: {{\"type\": \"text\", \"text\": ...}}.")
    if not count_only:
        if body.get("max_tokens") is None:
            raise _bad("max_tokens", "`max_tokens` is required.")
        _number(body, "max_tokens", 1, limits.max_tokens_cap, True)
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _bad("stream", "`stream` must be a boolean.")
    for name in ("temperature", "top_p", "top_k"):
        lo, hi, integer = _RANGES.get(name, (0, 2**31, True))
        _number(body, name, lo, hi, integer)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
                              or len(stops) > limits.max_stop_sequences):
        raise _bad("stop_sequences",
                   f"`stop_sequences` must be an array of at most {limits.max_stop_sequences} strings.")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
            raise _bad("tools", f"`tools` must be an array of at most {MAX_TOOLS} tool objects.")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
                raise _bad(f"tools[{i}].name", f"`tools[{i}].name` must be a non-empty string.")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or not _one_of(choice.get("type"), ANTHROPIC_TOOL_CHOICES):
            raise _bad("tool_choice", "`tool_choice` must be an object whose `type` is auto, any, tool or none.")
        if choice["type"] == "tool":
            _named_tool(choice.get("name"), "tool_choice.name", [t["name"] for t in tools or ()])
