"""Settling a request's token charge with what it really used.

A tokens-per-minute limit has to charge a request before it runs: the router takes an estimate (the prompt
from its bytes plus the full completion budget) so that a key cannot overrun its budget with requests in
flight. Once the answer is known, :class:`TokenCharge` replaces the estimate with the real count, so a
request that stops early, or fails, does not keep the unused part of its budget:

- a non-streamed answer: the engine's ``usage.total_tokens``;
- a stream: the engine's usage chunk when the client asked for one (``stream_options.include_usage``),
  otherwise the prompt estimate plus one token per streamed content event (vLLM sends one token per event
  unless ``--stream-interval`` is raised, so this is an estimate);
- an error answer, or no engine reached: nothing (the whole charge is given back);
- a stream that broke, timed out or lost its client: what was streamed until then;
- a non-streamed answer whose client went away: the estimate stays charged (what the engine did is unknown).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

#: Bytes of a stream's end kept to find the usage chunk (it is the last event before ``[DONE]``).
TAIL_BYTES = 4096


class TokenLimiter(Protocol):
    """What settling needs of the rate limiter."""

    def correct_tokens(self, key: str, charged: int, actual: int) -> None:
        """Adjust ``key``'s token bucket once the real usage is known."""


class TokenCharge:
    """The tokens one request was charged against its key; settled once with the real usage.

    Args:
        limiter: The rate limiter holding the key's token bucket.
        key: The key name charged.
        charged: Tokens charged up front (the estimate).
        prompt_estimate: The prompt's share of the estimate (for streams without a usage chunk).
    """

    __slots__ = ("charged", "events", "key", "limiter", "prompt_estimate", "settled", "tail")

    def __init__(self, limiter: TokenLimiter, key: str, charged: int, prompt_estimate: int) -> None:
        self.limiter = limiter
        self.key = key
        self.charged = charged
        self.prompt_estimate = prompt_estimate
        self.settled = False
        self.events = 0
        self.tail = b""

    def settle(self, actual: int | None) -> None:
        """Replace the estimate with ``actual`` tokens (None: keep the estimate). Only the first call counts."""
        if self.settled:
            return
        self.settled = True
        if actual is not None and actual != self.charged:
            self.limiter.correct_tokens(self.key, self.charged, max(0, int(actual)))

    def settle_body(self, data: bytes) -> None:
        """Settle with a non-streamed answer's ``usage.total_tokens`` (the estimate stays if it has none)."""
        self.settle(_total(_loads(data)))

    def feed(self, chunk: bytes) -> None:
        """Account one relayed chunk of a stream."""
        self.events += chunk.count(b"data: {")
        self.tail = (self.tail + chunk)[-TAIL_BYTES:]

    def settle_stream(self) -> None:
        """Settle a finished stream: its usage chunk if it has one, else prompt estimate + content events."""
        for line in reversed(self.tail.split(b"\n")):
            if line.startswith(b"data: {") and b'"usage"' in line:
                doc = _loads(line[6:])
                total = _total(doc)
                if total is not None:
                    self.settle(total)
                    return
                usage = _usage(doc)  # an Anthropic stream ends with the output count only
                if usage is not None and isinstance(usage.get("output_tokens"), int):
                    self.settle(self.prompt_estimate + usage["output_tokens"])
                    return
        # The role-only first event of a chat stream carries no token; the others carry about one each.
        self.settle(self.prompt_estimate + max(0, self.events - 1))


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _usage(doc: Any) -> dict[str, Any] | None:
    """The usage object of an answer or event: chat/completions and Responses (``usage``), a Responses
    stream's final event (``response.usage``), an Anthropic ``message_start`` (``message.usage``)."""
    if not isinstance(doc, dict):
        return None
    for holder in (doc, doc.get("response"), doc.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            return holder["usage"]
    return None


def _total(doc: Any) -> int | None:
    usage = _usage(doc)
    if usage is None:
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    for a, b in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        x, y = usage.get(a), usage.get(b)
        if isinstance(x, int) and isinstance(y, int):
            return x + y
    return None
