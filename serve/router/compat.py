"""Compatibility with clients written for older vLLM: request fields rewritten, a renamed response field mirrored.

vLLM 0.12 replaced the ``guided_*`` request fields with one ``structured_outputs`` object. Engines since then
*ignore* the old fields with a log line: a client written against older vLLM (tutorials, LangChain's
``extra_body={"guided_json": ...}``) still gets a 200, but with unconstrained output. The router rewrites
them instead, so the constraint holds, and it names each rewrite in ``x-qwen-compat``.

Mixing an old field with ``structured_outputs`` is refused (400): which one the client meant is unclear.

vLLM renamed the answers' ``reasoning_content`` to ``reasoning``; clients written for the old name (and for
DeepSeek's API) find no reasoning. With ``router.mirror_reasoning_content`` the router also sends each
``reasoning`` as ``reasoning_content``: in a non-streamed answer's messages, and in a stream's deltas (the
stream is cut at event boundaries and only the events that carry reasoning are re-encoded).
"""

from __future__ import annotations

from typing import Any

import orjson

from serve.router.protocol import InvalidRequestError

#: old request field -> ``structured_outputs`` key (None: dropped; the engine chooses the backend now)
GUIDED_FIELDS: dict[str, str | None] = {
    "guided_json": "json",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "grammar",
    "guided_whitespace_pattern": "whitespace_pattern",
    "guided_decoding_backend": None,
}

#: the ``structured_outputs`` keys that constrain the output (the others are options)
CONSTRAINTS = frozenset({"json", "regex", "choice", "grammar"})


def upgrade_legacy_fields(body: dict[str, Any]) -> list[str]:
    """Rewrite ``guided_*`` fields into ``structured_outputs`` in place.

    Args:
        body: The parsed request (chat or completions).

    Returns:
        The rewrites made, as ``old->new`` strings (empty when there was nothing to do).

    Raises:
        InvalidRequestError: an old field next to ``structured_outputs``.
    """
    present = [k for k in GUIDED_FIELDS if k in body]
    if not present:
        return []
    if body.get("structured_outputs") is not None:
        raise InvalidRequestError(
            f"`{present[0]}` is the pre-0.12 vLLM spelling of `structured_outputs`; send one or the other.",
            param=present[0])
    outputs = {GUIDED_FIELDS[k]: v for k in present if (v := body.pop(k)) is not None and GUIDED_FIELDS[k]}
    if not outputs.keys() & CONSTRAINTS:  # options without a constraint: old vLLM ignored them too
        return [f"{k}->dropped" for k in present]
    body["structured_outputs"] = outputs
    return [f"{k}->structured_outputs.{GUIDED_FIELDS[k]}" if GUIDED_FIELDS[k] in outputs else f"{k}->dropped"
            for k in present]


# --- reasoning_content --------------------------------------------------------------------------------
_REASONING = b'"reasoning":'


def _mirror(doc: Any, part: str) -> bool:
    """Copy ``reasoning`` to ``reasoning_content`` in each choice's ``part``; whether anything changed."""
    changed = False
    choices = doc.get("choices") if isinstance(doc, dict) else None
    for choice in choices or ():
        msg = choice.get(part) if isinstance(choice, dict) else None
        if isinstance(msg, dict) and msg.get("reasoning") is not None and "reasoning_content" not in msg:
            msg["reasoning_content"] = msg["reasoning"]
            changed = True
    return changed


def mirror_reasoning_body(data: bytes) -> bytes:
    """A non-streamed chat answer with each message's ``reasoning`` also as ``reasoning_content``."""
    if _REASONING not in data:
        return data
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data
    return orjson.dumps(doc) if _mirror(doc, "message") else data


class ReasoningMirror:
    """The same for a chat stream: feed the relayed chunks, send what :meth:`feed` returns, then :meth:`flush`.

    Bytes are held back only up to the end of the last complete event in what has arrived (vLLM ends every
    chunk with one, so in practice nothing waits).
    """

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> bytes:
        """Complete events of what has arrived, reasoning mirrored; the tail waits for the next chunk."""
        buf = self._rest + chunk
        cut = buf.rfind(b"\n\n") + 2
        if cut < 2:
            self._rest = buf
            return b""
        out, self._rest = buf[:cut], buf[cut:]
        if _REASONING not in out:
            return out
        return b"".join(_event(e) for e in out[:-2].split(b"\n\n"))

    def flush(self) -> bytes:
        """What is left at the end of the stream (an unterminated last event, as received)."""
        rest, self._rest = self._rest, b""
        return rest


def _event(event: bytes) -> bytes:
    if event.startswith(b"data: {") and _REASONING in event:
        try:
            doc = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if _mirror(doc, "delta"):
            return b"data: " + orjson.dumps(doc) + b"\n\n"
    return event + b"\n\n"
