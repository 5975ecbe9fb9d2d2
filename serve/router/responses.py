"""Stored responses of the Responses API: which engine replica holds each one.

vLLM keeps a stored response (``store: true``, with ``VLLM_ENABLE_RESPONSES_API_STORE=1`` in the engine's
environment) in the memory of the engine replica that created it. A later ``GET /v1/responses/{id}``,
``POST /v1/responses/{id}/cancel`` or a request with ``previous_response_id`` only works on that replica.
The router learns each new response's id as it relays the answer (the non-streamed body, or the first
event of a stream) and pins those follow-ups to the replica. The table is bounded and lives in the router
replica; a follow-up it does not know (the id was evicted, came from another router replica, or the engine
replica restarted and lost its store) gets a 404 that says so.
"""

from __future__ import annotations

import re
from collections import OrderedDict

#: A response id in an answer (``"id": "resp_..."``).
RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp_[A-Za-z0-9_-]{1,128})"')
#: Bytes of a stream searched for the id (it is in the first event, ``response.created``).
SNIFF_BYTES = 16384


class StoredResponses:
    """A bounded map: response id -> (deployment, replica, URL) that stores it.

    The URL matters when a replica runs several frontend processes (``engine_frontends``): each keeps its
    own store, so a follow-up goes to the very process that answered.

    Args:
        max_ids: Ids remembered (least recently used are forgotten first).
    """

    def __init__(self, max_ids: int = 100_000) -> None:
        self.max_ids = max_ids
        self._where: OrderedDict[str, tuple[str, str, str]] = OrderedDict()

    def remember(self, response_id: str, deployment: str, replica: str, url: str) -> None:
        """Record where a response is stored."""
        self._where[response_id] = (deployment, replica, url)
        self._where.move_to_end(response_id)
        while len(self._where) > self.max_ids:
            self._where.popitem(last=False)

    def where(self, response_id: str) -> tuple[str, str, str] | None:
        """``(deployment, replica, url)`` of a stored response, or None when unknown."""
        found = self._where.get(response_id)
        if found is not None:
            self._where.move_to_end(response_id)
        return found

    def learn(self, data: bytes, deployment: str, replica: str, url: str) -> bool:
        """Remember the response id found in ``data`` (an answer or the start of a stream)."""
        m = RESPONSE_ID.search(data)
        if m is None:
            return False
        self.remember(m.group(1).decode(), deployment, replica, url)
        return True


class IdSniffer:
    """Watches the first bytes of a relayed Responses stream for its id (no copy once found)."""

    __slots__ = ("store", "deployment", "replica", "url", "buf", "done")

    def __init__(self, store: StoredResponses, deployment: str, replica: str, url: str) -> None:
        self.store = store
        self.deployment = deployment
        self.replica = replica
        self.url = url
        self.buf = b""
        self.done = False

    def feed(self, chunk: bytes) -> None:
        """Look at one relayed chunk."""
        if self.done:
            return
        self.buf += chunk
        if self.store.learn(self.buf, self.deployment, self.replica, self.url) or len(self.buf) > SNIFF_BYTES:
            self.done = True
            self.buf = b""
