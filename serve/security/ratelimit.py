"""Token buckets on the monotonic clock, and the per-key limiter built from them.

A limit of ``N`` per minute is a bucket of capacity ``N`` refilled at ``N / 60`` per second: a client may
burst up to ``N`` and then sustains ``N`` per minute. A refused take reports how long until the bucket holds
enough (the ``Retry-After`` of the 429).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


def duration_text(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``0s``, ``250ms``, ``12s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class TokenBucket:
    """A token bucket.

    Args:
        capacity: Most tokens held (the burst).
        refill_per_s: Tokens added per second.
        clock: Monotonic clock in seconds.
    """

    __slots__ = ("capacity", "refill_per_s", "_clock", "_level", "_t")

    def __init__(self, capacity: float, refill_per_s: float, clock: Clock = time.monotonic) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("capacity and refill_per_s must be positive")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._clock = clock
        self._level = float(capacity)
        self._t = clock()

    @classmethod
    def per_minute(cls, n: int, clock: Clock = time.monotonic) -> TokenBucket:
        """A bucket allowing ``n`` per minute with a burst of ``n``."""
        return cls(n, n / 60.0, clock)

    def _refill(self) -> None:
        now = self._clock()
        if now > self._t:
            self._level = min(self.capacity, self._level + (now - self._t) * self.refill_per_s)
        self._t = max(self._t, now)

    @property
    def level(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._level

    def wait_for(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 when they are; ``inf`` when ``n`` exceeds capacity)."""
        if n > self.capacity:
            return math.inf
        self._refill()
        return max(0.0, (n - self._level) / self.refill_per_s)

    def try_take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens if available.

        Returns:
            0.0 when taken, else the seconds to wait before retrying (``inf``: never fits).
        """
        wait = self.wait_for(n)
        if wait == 0.0:
            self._level -= n
        return wait

    def force_take(self, n: float) -> None:
        """Take ``n`` tokens even if that leaves the bucket in debt (usage corrections)."""
        self._refill()
        self._level = max(-self.capacity, self._level - n)

    def give_back(self, n: float) -> None:
        """Return ``n`` tokens (an estimate that was too high), up to capacity."""
        self._refill()
        self._level = min(self.capacity, self._level + n)


@dataclass
class Refusal:
    """Why a take was refused: which limit and the seconds until it would pass (``inf``: never)."""

    limit: str
    retry_after: float


class KeyBuckets:
    """The request and token buckets of one key."""

    __slots__ = ("requests", "tokens")

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock) -> None:
        self.requests = TokenBucket.per_minute(rpm, clock) if rpm else None
        self.tokens = TokenBucket.per_minute(tpm, clock) if tpm else None


class RateLimiter:
    """Per-key requests/min and tokens/min limits.

    Args:
        requests_per_minute: Default request limit (None: unlimited).
        tokens_per_minute: Default token limit (None: unlimited).
        per_key: Key name -> ``(requests_per_minute, tokens_per_minute)`` overriding the defaults.
        clock: Monotonic clock.
        max_keys: Most keys tracked; the least recently used are forgotten beyond it (anonymous clients are
            keyed by address, an unbounded set).
    """

    def __init__(self, requests_per_minute: int | None = None, tokens_per_minute: int | None = None,
                 per_key: dict[str, tuple[int | None, int | None]] | None = None, *,
                 clock: Clock = time.monotonic, max_keys: int = 10_000) -> None:
        self.default = (requests_per_minute, tokens_per_minute)
        self.per_key = dict(per_key or {})
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, KeyBuckets] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return any(self.default) or any(any(v) for v in self.per_key.values())

    def buckets(self, key: str) -> KeyBuckets:
        """The buckets of ``key`` (made on first use)."""
        b = self._buckets.get(key)
        if b is None:
            rpm, tpm = self.per_key.get(key, self.default)
            b = KeyBuckets(rpm, tpm, self.clock)
            self._buckets[key] = b
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return b

    def take_request(self, key: str) -> Refusal | None:
        """Count one request against ``key``; a :class:`Refusal` when over the limit.

        A key whose token bucket is empty is refused too, before the request is parsed.
        """
        b = self.buckets(key)
        if b.tokens is not None and b.tokens.level <= 0:
            return Refusal("tokens", b.tokens.wait_for(1.0))
        if b.requests is not None:
            wait = b.requests.try_take(1.0)
            if wait:
                return Refusal("requests", wait)
        return None

    def take_tokens(self, key: str, n: int) -> Refusal | None:
        """Charge ``n`` tokens to ``key``; a :class:`Refusal` when the bucket cannot hold them now."""
        b = self.buckets(key)
        if b.tokens is None:
            return None
        wait = b.tokens.try_take(float(n))
        return Refusal("tokens", wait) if wait else None

    def headers(self, key: str) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for ``key``: limit, remaining and time to a full bucket.

        Only the limits that ``key`` has are described (none: an empty dict).
        """
        out: dict[str, str] = {}
        b = self.buckets(key)
        for name, bucket in (("requests", b.requests), ("tokens", b.tokens)):
            if bucket is None:
                continue
            level = bucket.level
            out[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, int(level)))
            out[f"x-ratelimit-reset-{name}"] = duration_text((bucket.capacity - level) / bucket.refill_per_s)
        return out

    def correct_tokens(self, key: str, charged: int, actual: int) -> None:
        """Adjust ``key``'s token bucket once the real usage is known."""
        b = self.buckets(key)
        if b.tokens is None or actual == charged:
            return
        if actual < charged:
            b.tokens.give_back(float(charged - actual))
        else:
            b.tokens.force_take(float(actual - charged))
