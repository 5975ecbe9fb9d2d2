"""Replica choice within a deployment: round-robin, least-loaded (power of two choices), prefix affinity.

Task routing picks the variant; these small policies pick which engine replica of it serves the request.

- :class:`RoundRobin`: rotate over the healthy replicas.
- :class:`LeastLoaded`: power of two choices on the router's in-flight counts (sample two, take the
  less busy); with two replicas it is simply the less busy one.
- :class:`PrefixAffinity`: requests that share a prefix (the system prompt and first user turn) or a
  session (``x-session-id`` header or the ``user`` field) go to the replica that served that prefix before,
  so vLLM's prefix cache is reused. A prefix seen for the first time has no cache anywhere: it goes to the
  least busy replica (ties broken by rendezvous hashing), so workloads without shared prefixes are balanced
  like least-loaded. The router remembers a bounded table of recent prefixes; a forgotten prefix, or one whose
  replica is gone, is placed again. A load guard falls back to least-loaded when the remembered replica is
  much busier than the least busy one (the failure seen in sglang#21199, where pure cache affinity overloaded
  one replica).

Every choice returns an ``outcome`` from a closed set for the ``qwen_router_replica_choices_total`` metric.
"""

from __future__ import annotations

import abc
import hashlib
import itertools
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from serve.router.upstream import Endpoint

OUTCOMES = ("round_robin", "least_loaded", "affinity", "affinity_new", "affinity_fallback", "session")
#: Characters of the prompt prefix that define a "shared prefix" for affinity.
PREFIX_CHARS = 512


class ReplicaPolicy(abc.ABC):
    """Chooses one endpoint among the healthy replicas of a deployment."""

    name: str = "base"

    @abc.abstractmethod
    def choose(self, endpoints: Sequence[Endpoint], body: Mapping[str, Any],
               headers: Mapping[str, str]) -> tuple[Endpoint, str]:
        """Return the chosen endpoint (``endpoints`` is non-empty and healthy) and the outcome label."""


class RoundRobin(ReplicaPolicy):
    """Rotate over the replicas."""

    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, endpoints: Sequence[Endpoint], body: Mapping[str, Any],
               headers: Mapping[str, str]) -> tuple[Endpoint, str]:
        ordered = sorted(endpoints, key=lambda e: e.replica)
        return ordered[next(self._counter) % len(ordered)], "round_robin"


class LeastLoaded(ReplicaPolicy):
    """Power of two choices on in-flight requests (ties: fewer served)."""

    name = "least_loaded"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def choose(self, endpoints: Sequence[Endpoint], body: Mapping[str, Any],
               headers: Mapping[str, str]) -> tuple[Endpoint, str]:
        if len(endpoints) <= 2:
            pool: Sequence[Endpoint] = endpoints
        else:
            pool = self._rng.sample(list(endpoints), 2)
        return min(pool, key=lambda e: (e.ongoing, e.served)), "least_loaded"


def affinity_key(body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The affinity key of a request: ``("session", id)`` or ``("prefix", digest)``, or None."""
    session = headers.get("x-session-id") or body.get("user")
    if isinstance(session, str) and session:
        return "session", session
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        # The conversation's start: leading system messages and the first user turn. Later turns extend
        # the same prefix, so every turn of a conversation gets the same key.
        parts: list[str] = []
        for m in messages:
            if not isinstance(m, Mapping):
                break
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
            if m.get("role") != "system":
                break
        text = "\x00".join(parts)
    else:
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
    if not text:
        return None
    return "prefix", hashlib.blake2b(text[:PREFIX_CHARS].encode("utf-8", "replace"), digest_size=8).hexdigest()


def _rendezvous(key: str, endpoints: Sequence[Endpoint]) -> Endpoint:
    """Highest-random-weight choice: stable per key, moves only 1/n of keys when a replica changes."""
    return max(endpoints, key=lambda e: hashlib.blake2b(f"{key}|{e.replica}".encode(), digest_size=8).digest())


class PrefixAffinity(ReplicaPolicy):
    """Shared prefixes and sessions stick to the replica that has them cached unless it is much busier.

    Args:
        load_guard: Fall back when ``preferred.ongoing > load_guard * least.ongoing + slack``.
        slack: Absolute in-flight difference always tolerated.
        max_keys: Prefixes and sessions remembered (least recently used ones are forgotten first).
    """

    name = "prefix_affinity"

    def __init__(self, load_guard: float = 2.0, slack: int = 4, max_keys: int = 65536) -> None:
        self.load_guard = load_guard
        self.slack = slack
        self.max_keys = max_keys
        self._fallback = LeastLoaded()
        self._homes: OrderedDict[str, str] = OrderedDict()

    def choose(self, endpoints: Sequence[Endpoint], body: Mapping[str, Any],
               headers: Mapping[str, str]) -> tuple[Endpoint, str]:
        key = affinity_key(body, headers)
        if key is None:
            return self._fallback.choose(endpoints, body, headers)
        kind, digest = key
        least = min(endpoints, key=lambda e: (e.ongoing, e.served))
        home_id = self._homes.get(digest)
        home = next((e for e in endpoints if e.replica == home_id), None) if home_id is not None else None
        if home is None:
            # Nothing cached anywhere yet (or its replica is gone): the least busy replica becomes its home.
            idle = [e for e in endpoints if e.ongoing == least.ongoing]
            home = _rendezvous(digest, idle)
            self._remember(digest, home.replica)
            return home, "session" if kind == "session" else "affinity_new"
        self._homes.move_to_end(digest)
        if home.ongoing > self.load_guard * least.ongoing + self.slack:
            return least, "affinity_fallback"
        return home, "session" if kind == "session" else "affinity"

    def _remember(self, digest: str, replica: str) -> None:
        self._homes[digest] = replica
        self._homes.move_to_end(digest)
        while len(self._homes) > self.max_keys:
            self._homes.popitem(last=False)


def make_policy(name: str, options: Mapping[str, Any] | None = None) -> ReplicaPolicy:
    """Build a replica policy by name (``round_robin``, ``least_loaded``, ``prefix_affinity``)."""
    opts = dict(options or {})
    if name == "round_robin":
        return RoundRobin()
    if name == "least_loaded":
        return LeastLoaded()
    if name == "prefix_affinity":
        return PrefixAffinity(**opts)
    raise ValueError(f"unknown replica policy {name!r}")
