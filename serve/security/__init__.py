"""Security and resilience of the router: API keys, per-key rate limits, body size limit.

:class:`Guard` is what the router calls (``serve.router.app._default_guard`` builds it from the fleet).
"""

from serve.security.body import BodyLimitMiddleware, BodyTooLargeError
from serve.security.guard import Guard, estimate_tokens
from serve.security.keys import KeyStore, KeyStoreError, bearer_token, parse_entries
from serve.security.ratelimit import RateLimiter, Refusal, TokenBucket
from serve.security.usage import TokenCharge

__all__ = [
    "BodyLimitMiddleware",
    "BodyTooLargeError",
    "Guard",
    "KeyStore",
    "KeyStoreError",
    "RateLimiter",
    "Refusal",
    "TokenBucket",
    "TokenCharge",
    "bearer_token",
    "estimate_tokens",
    "parse_entries",
]
