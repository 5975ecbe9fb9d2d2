"""Replica choice within a deployment: round-robin, least-loaded (power of two choices), prefix affinity.

Task routing picks the variant; these small policies pick which engine replica of it serves the request.

Each picker is a small class with one method, :meth:`ReplicaPicker.pick`, over the healthy endpoints and the
request's :class:`~serve.router.facts.RequestFacts`. Its parameters are one pydantic model per policy in the
fleet config (``serve.config.specs``: ``replica_routing: {policy: ..., <its parameters>}``); :data:`PICKERS`
maps a policy name to its class. Adding a policy: a parameter model there, a class and a ``PICKERS`` entry here.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from serve.router.facts import RequestFacts
from serve.router.upstream import Endpoint

if TYPE_CHECKING:  # pragma: no cover
    from serve.config.specs import ReplicaRouting

OUTCOMES = ("round_robin", "least_loaded", "affinity", "affinity_new", "affinity_fallback", "session", "stored")
#: Characters of the prompt prefix that define a "shared prefix" for affinity.
PREFIX_CHARS = 512


class ReplicaPicker(abc.ABC):
    """Picks one endpoint among the healthy replicas of a deployment."""

    name: str = "base"

    @abc.abstractmethod
    def pick(self, endpoints: Sequence[Endpoint], facts: RequestFacts) -> tuple[Endpoint, str]:
        """Return the chosen endpoint (``endpoints`` is non-empty and healthy) and the outcome label."""


class RoundRobin(ReplicaPicker):
    """Rotate over the replicas."""

    name = "round_robin"

    def __init__(self) -> None:
        self._counter = itertools.count()

    def pick(self, endpoints: Sequence[Endpoint], facts: RequestFacts) -> tuple[Endpoint, str]:
        ordered = sorted(endpoints, key=lambda e: e.replica)
        return ordered[next(self._counter) % len(ordered)], "round_robin"


class LeastLoaded(ReplicaPicker):
    """Power of two choices on in-flight requests (ties: fewer served)."""

    name = "least_loaded"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def pick(self, endpoints: Sequence[Endpoint], facts: RequestFacts) -> tuple[Endpoint, str]:
        if len(endpoints) <= 2:
            pool: Sequence[Endpoint] = endpoints
        else:
            pool = self._rng.sample(list(endpoints), 2)
        return min(pool, key=lambda e: (e.ongoing, e.served)), "least_loaded"


def affinity_key(facts: RequestFacts) -> tuple[str, str] | None:
    """The affinity key of a request: ``("session", id)`` or ``("prefix", digest)``, or None.

    The prefix is the conversation's start (leading system turns and the first user turn): later turns extend
    it, so every turn of a conversation gets the same key.
    """
    if facts.session:
        return "session", facts.session
    if not facts.prefix:
        return None
    return "prefix", hashlib.blake2b(facts.prefix[:PREFIX_CHARS].encode("utf-8", "replace"), digest_size=8).hexdigest()


def _rendezvous(key: str, endpoints: Sequence[Endpoint]) -> Endpoint:
    """Highest-random-weight choice: stable per key, moves only 1/n of keys when a replica changes."""
    return max(endpoints, key=lambda e: hashlib.blake2b(f"{key}|{e.replica}".encode(), digest_size=8).digest())


class PrefixAffinity(ReplicaPicker):
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

    def pick(self, endpoints: Sequence[Endpoint], facts: RequestFacts) -> tuple[Endpoint, str]:
        key = affinity_key(facts)
        if key is None:
            return self._fallback.pick(endpoints, facts)
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


#: Policy name -> picker class (built with the policy's parameters from the fleet config).
PICKERS: dict[str, type[ReplicaPicker]] = {
    "round_robin": RoundRobin,
    "least_loaded": LeastLoaded,
    "prefix_affinity": PrefixAffinity,
}


def make_picker(routing: ReplicaRouting | str) -> ReplicaPicker:
    """Build the replica picker of a deployment's ``replica_routing`` (or a bare policy name).

    Raises:
        ValueError: Unknown policy.
    """
    if isinstance(routing, str):
        name, params = routing, {}
    else:
        name, params = routing.policy, routing.model_dump(exclude={"policy"})
    cls = PICKERS.get(name)
    if cls is None:
        raise ValueError(f"unknown replica policy {name!r}; known: {sorted(PICKERS)}")
    return cls(**params)
