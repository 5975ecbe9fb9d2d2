"""The async HTTP client: one streamed OpenAI request, timed and checked.

Timing follows ``vllm bench serve`` (``endpoint_request_func.py``) with one deliberate difference: TTFT
is taken at the first chunk that carries generated text (content, reasoning or completion text), not at
the first chunk with ``choices``, so a proxy that sends the role chunk early cannot hide engine time.
ITL is the gap between consecutive ``choices`` chunks after that one; E2E latency ends at the last SSE
message. All times are ``time.perf_counter()`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, Field

from loadtest.workloads.base import Conversation, Turn

logger = logging.getLogger(__name__)

_THINK_TAGS = ("<think>", "</think>")


class ClientOptions(BaseModel):
    """How requests are built and checked."""

    base_url: str = Field(default="http://127.0.0.1:8000", description="server root, without /v1")
    endpoint: Literal["chat", "completions"] = Field(default="chat", description="API surface")
    model: str = Field(default="auto", description="model field of each request")
    api_key: str | None = Field(default=None, description="sent as Authorization: Bearer")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    ignore_eos: bool = Field(default=False, description="send ignore_eos and min_tokens = max_tokens")
    thinking: bool | None = Field(
        default=None, description="chat_template_kwargs.enable_thinking; None = unset"
    )
    send_task_header: bool = Field(default=False, description="send the workload's task as x-qwen-task")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="merged into every request")
    timeout_s: float = Field(default=600.0, gt=0, description="per-request timeout")
    usage_tolerance: int = Field(
        default=0, ge=0, description="allowed usage - counted chunks (parser tokens)"
    )

    @property
    def url(self) -> str:
        """Full URL of the endpoint."""
        path = "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"
        return self.base_url.rstrip("/").removesuffix("/v1") + path


@dataclass
class RequestRecord:
    """Everything measured about one request (one turn of a conversation)."""

    conversation: int
    turn: int
    task: str | None = None
    endpoint: str = ""
    request_id: str = ""
    scheduled: float = 0.0
    start: float = 0.0
    queue_time: float = 0.0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    success: bool = False
    status: int | None = None
    error: str = ""
    error_kind: str | None = None
    expected_prompt_len: int = 0
    prompt_len: int = 0
    max_tokens: int | None = None
    output_tokens: int = 0
    usage_completion_tokens: int | None = None
    counted_chunks: int = 0
    reasoning_chunks: int = 0
    finish_reason: str | None = None
    routed_task: str | None = None
    routed_model: str | None = None
    checks_failed: list[str] = field(default_factory=list)
    text: str = field(default="", repr=False)

    def to_json(self, keep_text: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (generated text dropped unless asked)."""
        d = asdict(self)
        if not keep_text:
            d["text_len"] = len(d.pop("text"))
        return d


def build_payload(
    opts: ClientOptions, conv: Conversation, turn: Turn, history: list[tuple[str, str]]
) -> dict[str, Any]:
    """The JSON body for one turn, given the (user, assistant) history before it."""
    body: dict[str, Any] = {"model": opts.model, "stream": True, "stream_options": {"include_usage": True}}
    if turn.output_len is not None:
        body["max_tokens"] = turn.output_len
        if opts.ignore_eos:
            body["ignore_eos"] = True
            body["min_tokens"] = turn.output_len
    if opts.endpoint == "chat":
        msgs: list[dict[str, Any]] = [{"role": "system", "content": conv.system}] if conv.system else []
        for u, a in history:
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        content: Any = turn.prompt
        if turn.image_url:
            content = [
                {"type": "text", "text": turn.prompt},
                {"type": "image_url", "image_url": {"url": turn.image_url}},
            ]
        msgs.append({"role": "user", "content": content})
        body["messages"] = msgs
        if opts.thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": opts.thinking}
    else:
        past = "".join(f"{u}\n{a}\n" for u, a in history)
        body["prompt"] = (f"{conv.system}\n" if conv.system else "") + past + turn.prompt
    body.update(conv.extra_body)
    body.update(opts.extra_body)
    return body


def build_headers(opts: ClientOptions, conv: Conversation, request_id: str) -> dict[str, str]:
    """Request headers: JSON, auth, x-request-id, the task hint when asked, and user extras."""
    h = {"Content-Type": "application/json", "x-request-id": request_id}
    if opts.api_key:
        h["Authorization"] = f"Bearer {opts.api_key}"
    if opts.send_task_header and conv.task:
        h["x-qwen-task"] = conv.task
    h.update(opts.headers)
    return h


class _StreamState:
    """Accumulates one SSE stream."""

    def __init__(self, rec: RequestRecord, chat: bool) -> None:
        self.rec = rec
        self.chat = chat
        self.prev = 0.0
        self.last = 0.0
        self.parts: list[str] = []
        self.done = False
        self.usage_seen = False

    def feed(self, obj: dict[str, Any], now: float) -> None:
        rec = self.rec
        self.last = now
        if "error" in obj and not obj.get("choices"):
            raise _StreamError(str(obj["error"])[:300])
        if usage := obj.get("usage"):
            self.usage_seen = True
            rec.usage_completion_tokens = usage.get("completion_tokens")
            if (pt := usage.get("prompt_tokens")) is not None:
                rec.prompt_len = int(pt)
        choices = obj.get("choices")
        if not choices:
            return
        ch = choices[0]
        if ch.get("finish_reason"):
            rec.finish_reason = ch["finish_reason"]
        if self.chat:
            delta = ch.get("delta") or {}
            content = delta.get("content") or ""
            reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
            if delta.get("role") and not content and not reasoning and not ch.get("finish_reason"):
                return  # the role-only opening chunk carries no token
        else:
            content, reasoning = ch.get("text") or "", ""
        rec.counted_chunks += 1
        if reasoning:
            rec.reasoning_chunks += 1
        self.parts.append(content)
        if rec.ttft is None:
            if content or reasoning:
                rec.ttft = now - rec.start
                self.prev = now
            return
        rec.itl.append(now - self.prev)
        self.prev = now


class _StreamError(Exception):
    pass


async def send_turn(
    session: aiohttp.ClientSession,
    opts: ClientOptions,
    conv: Conversation,
    turn_idx: int,
    history: list[tuple[str, str]],
    scheduled: float,
) -> RequestRecord:
    """Send one turn and return its record (never raises for request failures).

    Args:
        session: The shared aiohttp session.
        opts: Client options.
        conv: The conversation.
        turn_idx: Which turn of ``conv``.
        history: (user, assistant) pairs before this turn.
        scheduled: perf_counter time at which the request was due (arrival); queue time counts from it.
    """
    turn = conv.turns[turn_idx]
    rid = uuid.uuid4().hex
    rec = RequestRecord(
        conversation=conv.index,
        turn=turn_idx,
        task=conv.task,
        request_id=rid,
        scheduled=scheduled,
        expected_prompt_len=turn.prompt_len,
        max_tokens=turn.output_len,
    )
    rec.prompt_len = turn.prompt_len
    payload = build_payload(opts, conv, turn, history)
    state = _StreamState(rec, opts.endpoint == "chat")
    rec.start = time.perf_counter()
    rec.queue_time = max(0.0, rec.start - scheduled)
    try:
        async with session.post(opts.url, json=payload, headers=build_headers(opts, conv, rid)) as resp:
            rec.status = resp.status
            rec.routed_task = resp.headers.get("x-qwen-task")
            rec.routed_model = resp.headers.get("x-qwen-model")
            if resp.status != 200:
                body = await resp.text()
                rec.error, rec.error_kind = f"HTTP {resp.status}: {body[:300]}", f"http_{resp.status}"
                rec.latency = time.perf_counter() - rec.start
                return rec
            await _read_stream(resp, state)
    except _StreamError as e:
        rec.error, rec.error_kind = f"error in stream: {e}", "stream_error"
    except asyncio.TimeoutError:
        rec.error, rec.error_kind = f"timeout after {opts.timeout_s:g} s", "timeout"
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
        rec.error, rec.error_kind = f"{type(e).__name__}: {e}", "connection"
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        rec.error, rec.error_kind = f"bad response: {type(e).__name__}: {e}", "protocol"
    if rec.error_kind is None:
        _finish(rec, state, opts)
    else:
        rec.latency = time.perf_counter() - rec.start
    return rec


async def _read_stream(resp: aiohttp.ClientResponse, state: _StreamState) -> None:
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue  # blank separators, SSE comments/pings, event: lines
        data = line[5:].strip()
        now = time.perf_counter()
        if data == b"[DONE]":
            state.done = True
            state.last = now
            break
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("SSE data is not a JSON object")
        state.feed(obj, now)


def _finish(rec: RequestRecord, state: _StreamState, opts: ClientOptions) -> None:
    rec.latency = (state.last or time.perf_counter()) - rec.start
    rec.text = "".join(state.parts)
    if not state.done and rec.finish_reason is None:
        rec.error, rec.error_kind = "stream ended without finish_reason or [DONE]", "protocol"
        return
    if rec.ttft is None:
        rec.error, rec.error_kind = "no token in the stream", "protocol"
        return
    rec.success = True
    rec.output_tokens = rec.usage_completion_tokens or rec.counted_chunks
    rec.checks_failed = run_checks(rec, state.usage_seen, state.done, opts)


def run_checks(rec: RequestRecord, usage_seen: bool, done: bool, opts: ClientOptions) -> list[str]:
    """Correctness checks under load; returns the names of those that failed."""
    bad: list[str] = []
    if not done:
        bad.append("missing_done")
    if not usage_seen or rec.usage_completion_tokens is None:
        bad.append("usage_missing")
    else:
        diff = rec.usage_completion_tokens - rec.counted_chunks
        if diff < 0 or diff > opts.usage_tolerance:
            bad.append("usage_mismatch")
    if rec.finish_reason is None:
        bad.append("finish_missing")
    elif rec.max_tokens is not None:
        at_max = rec.output_tokens >= rec.max_tokens
        if (rec.finish_reason == "length") != at_max and rec.finish_reason in ("stop", "length"):
            bad.append("finish_reason_wrong")
        if opts.ignore_eos and rec.output_tokens != rec.max_tokens:
            bad.append("output_len_mismatch")
    if opts.endpoint == "chat" and opts.thinking is not None:
        if any(t in rec.text for t in _THINK_TAGS):
            bad.append("reasoning_in_content")
        if opts.thinking and rec.reasoning_chunks == 0:
            bad.append("reasoning_missing")
    return bad
