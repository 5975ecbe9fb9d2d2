"""Request fields that older vLLM versions accepted, rewritten to what the engines take now.

vLLM 0.12 replaced the ``guided_*`` request fields with one ``structured_outputs`` object. Engines since then
*ignore* the old fields with a log line: a client written against older vLLM (tutorials, LangChain's
``extra_body={"guided_json": ...}``) still gets a 200, but with unconstrained output. The router rewrites
them instead, so the constraint holds, and it names each rewrite in ``x-qwen-compat``.

Mixing an old field with ``structured_outputs`` is refused (400): which one the client meant is unclear.
"""

from __future__ import annotations

from typing import Any

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
