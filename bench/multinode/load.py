"""Steady streaming load with a record of every request: when it started and ended, and how it ended.

A fault test needs more than a success rate: which requests failed, whether they were in flight when the
fault hit, and when new requests all succeeded again. Each worker thread sends streaming chat completions
back to back through the official ``openai`` client and records a :class:`Outcome` per request. A request
that gets no byte for ``read_timeout_s`` counts as a hang (a failure of its own kind, never a silent wait).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """One request: start/end (monotonic seconds), ok, error kind, the replica that served it."""

    start: float
    end: float
    ok: bool
    error: str = ""
    replica: str = ""
    tokens: int = 0


def stream_tokens(chunks: Iterable[Any]) -> int:
    """Completion tokens of a streamed chat answer: the final ``usage`` chunk's count, else the chunks that
    carried text (content or reasoning).

    Counting content chunks alone is not enough: a tiny random-weight Qwen3 can spend a whole answer inside
    its reasoning block, streaming only ``reasoning_content`` (0 content chunks for a good answer).
    """
    usage = None
    text_chunks = 0
    for chunk in chunks:
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            extra = getattr(delta, "model_extra", None) or {}
            reasoning = getattr(delta, "reasoning_content", None) or extra.get("reasoning_content") \
                or extra.get("reasoning")
            if getattr(delta, "content", None) or reasoning:
                text_chunks += 1
    completion = getattr(usage, "completion_tokens", None) if usage is not None else None
    return int(completion) if completion else text_chunks


@dataclass
class Load:
    """Closed-loop streaming load: ``concurrency`` threads, each sending one request after another.

    Args:
        base_url: The stack's base URL (``http://host:port``).
        model: Model (or alias) to request.
        concurrency: Parallel streams.
        max_tokens: Tokens per answer (``ignore_eos``: every answer has this length).
        read_timeout_s: No byte for this long ends the request as a hang.
        api_key: Bearer key, if the stack requires one.
    """

    base_url: str
    model: str
    concurrency: int = 4
    max_tokens: int = 48
    read_timeout_s: float = 60.0
    api_key: str = "none"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self) -> Any:
        from openai import OpenAI

        # A plain number: this openai release runs on httpx2 and refuses an ``httpx.Timeout``.
        return OpenAI(base_url=self.base_url + "/v1", api_key=self.api_key, max_retries=0,
                      timeout=self.read_timeout_s)

    def _one(self, client: Any) -> Outcome:
        start = time.monotonic()
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=self.model, messages=[{"role": "user", "content": "Tell me a long story."}],
                max_tokens=self.max_tokens, stream=True, stream_options={"include_usage": True},
                extra_body={"ignore_eos": True})
            replica = raw.headers.get("x-qwen-replica", "")
            tokens = stream_tokens(raw.parse())
            ok = tokens > 0
            return Outcome(start, time.monotonic(), ok, "" if ok else "empty", replica, tokens)
        except Exception as exc:  # noqa: BLE001 - every failure kind is recorded, none is raised
            kind = type(exc).__name__
            if "Timeout" in kind:
                kind = "hang"
            return Outcome(start, time.monotonic(), False, kind)

    def _worker(self) -> None:
        client = self._client()
        while not self._stop.is_set():
            outcome = self._one(client)
            with self._lock:
                self.outcomes.append(outcome)
            if not outcome.ok:
                time.sleep(0.2)  # a failing stack is not hammered in a tight loop

    def start(self) -> Load:
        """Start the worker threads."""
        for i in range(self.concurrency):
            t = threading.Thread(target=self._worker, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[Outcome]:
        """Stop after the requests in flight end; returns every outcome, in start order."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.read_timeout_s + 30)
        return sorted(self.outcomes, key=lambda o: o.start)

    def snapshot(self) -> list[Outcome]:
        """The outcomes so far."""
        with self._lock:
            return list(self.outcomes)


def summarize(outcomes: list[Outcome], fault_at: float | None = None) -> dict[str, Any]:
    """Counts and recovery figures of a run with a fault injected at ``fault_at`` (monotonic).

    Returns:
        ``requests``, ``failed``, ``failed_in_flight`` (started before the fault, ended after it),
        ``failed_after`` (started after the fault), ``hangs``, ``errors`` by kind, and
        ``recovered_after_s``: from the fault to the start of the first request after which every
        request succeeded (None when the run never recovered, 0.0 when nothing failed).
    """
    failed = [o for o in outcomes if not o.ok]
    errors: dict[str, int] = {}
    for o in failed:
        errors[o.error] = errors.get(o.error, 0) + 1
    out: dict[str, Any] = {"requests": len(outcomes), "failed": len(failed), "hangs": errors.get("hang", 0),
                           "errors": errors}
    if fault_at is None:
        return out
    out["failed_in_flight"] = sum(1 for o in failed if o.start < fault_at <= o.end)
    out["failed_after"] = sum(1 for o in failed if o.start >= fault_at)
    last_bad = max((o.start for o in failed if o.start >= fault_at), default=None)
    if last_bad is None:
        out["recovered_after_s"] = 0.0
    else:
        later = [o for o in outcomes if o.start > last_bad]
        out["recovered_after_s"] = round(min(o.start for o in later) - fault_at, 2) if later else None
    return out
