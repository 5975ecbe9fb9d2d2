"""Admission control of the router: API keys, per-key rate limits and the body size limit.

The router calls ``key = await guard.admit(request, raw)`` before parsing a request and
``charge = guard.charge(key, body)`` after routing it (tokens: the prompt estimated from its bytes plus the
completion budget); the relay settles ``charge`` with the answer's real usage (``serve.security.usage``).
``/v1/route``, ``/v1/models`` and (unless public) ``/metrics`` call ``admit(request, raw, charge=False)``: the
key is checked, nothing is counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request

from serve.errors import AuthenticationError, RateLimitError
from serve.security.body import BodyLimitMiddleware, too_large
from serve.security.keys import KeyStore, bearer_token
from serve.security.ratelimit import RateLimiter, Refusal
from serve.security.usage import TokenCharge

logger = logging.getLogger(__name__)

BYTES_PER_TOKEN = 4  # rough prompt estimate; conservative for Qwen's tokenizer on English text


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A request's prompt tokens: the count of token ids, or its bytes / 4 (messages and a system prompt,
    a completions prompt, or a Responses API ``input`` and ``instructions``)."""
    if "messages" in body:
        prompt: Any = [body.get("messages"), body.get("system")]
    elif "input" in body:
        prompt = [body.get("input"), body.get("instructions")]
    else:
        prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    return len(orjson.dumps(prompt)) // BYTES_PER_TOKEN + 1


def estimate_tokens(body: Mapping[str, Any], default_completion: int) -> int:
    """Tokens a request may cost: its prompt (bytes / 4, or the count of token ids) plus the completion budget.

    Args:
        body: The parsed and validated request.
        default_completion: Completion tokens assumed when ``max_tokens`` is unset.
    """
    n_prompt = estimate_prompt_tokens(body)
    budget = next((v for name in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                   if (v := _count(body.get(name))) is not None), default_completion)
    return n_prompt + budget * max(_count(body.get("n")) or 1, _count(body.get("best_of")) or 1)


def _count(value: Any) -> int | None:
    """``value`` when it is a positive integer, else None.

    Each API validates only its own fields (``n`` and ``best_of`` are chat and completions fields, the budget
    has a different name on each): a field another API does not define reaches the estimate unchecked and must
    not decide it, let alone fail it.
    """
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class Guard:
    """API keys + rate limits + body limit for the router.

    Args:
        keys: Valid API keys (None or empty: no keys known).
        limiter: Per-key rate limits.
        max_body_bytes: Largest request body.
        require_key: Refuse requests without a valid key (401).
        default_completion_tokens: Completion tokens charged when ``max_tokens`` is unset.
    """

    def __init__(self, keys: KeyStore | None, limiter: RateLimiter, *, max_body_bytes: int,
                 require_key: bool, default_completion_tokens: int = 256) -> None:
        self.keys = keys or KeyStore()
        self.limiter = limiter
        self.max_body_bytes = int(max_body_bytes)
        self.require_key = require_key
        self.default_completion_tokens = default_completion_tokens
        if require_key and not len(self.keys):
            logger.warning("API keys are required but none is configured: every request will get 401")

    @classmethod
    def from_fleet(cls, fleet: Any) -> Guard:
        """Build the guard from ``fleet.security`` (keys are read now, from the env var and/or the file)."""
        sec = fleet.security
        keys = KeyStore.from_sources(sec.api_keys_env, sec.api_keys_file) \
            if (sec.api_keys_env or sec.api_keys_file) else KeyStore()
        rl = sec.rate_limit
        per_key = {name: (lim.requests_per_minute, lim.tokens_per_minute) for name, lim in rl.per_key.items()}
        unknown = sorted(set(per_key) - set(keys.names()))
        if unknown:
            logger.warning("rate_limit.per_key names unknown keys: %s", ", ".join(unknown))
        limiter = RateLimiter(rl.requests_per_minute, rl.tokens_per_minute, per_key)
        return cls(keys, limiter, max_body_bytes=sec.limits.max_body_bytes, require_key=sec.require_api_key,
                   default_completion_tokens=rl.default_completion_tokens)

    def install(self, app: FastAPI) -> None:
        """Add the body-size middleware to ``app`` (call before the request-id middleware is added)."""
        app.add_middleware(BodyLimitMiddleware, max_bytes=self.max_body_bytes)

    def authenticate(self, request: Request) -> str:
        """The caller's key name, or ``ip:<address>`` for anonymous callers when keys are optional.

        Raises:
            AuthenticationError: Keys are required and the header is missing or the key unknown.
        """
        # OpenAI clients send `Authorization: Bearer <key>`; Anthropic's send `x-api-key: <key>`.
        token = bearer_token(request.headers.get("authorization")) or request.headers.get("x-api-key") or None
        name = self.keys.lookup(token) if token else None
        if name is not None:
            return name
        if self.require_key:
            if token is None:
                raise AuthenticationError(
                    "You didn't provide an API key. Send it as `Authorization: Bearer <key>` (or `x-api-key`).",
                    code="missing_api_key")
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        host = request.client.host if request.client is not None else "unknown"
        return f"ip:{host}"

    async def admit(self, request: Request, raw: bytes, charge: bool = True) -> str:
        """Check the key, the body size and (when ``charge``) the key's request rate.

        Returns:
            The key name (see :meth:`authenticate`), to pass to :meth:`charge`.

        Raises:
            AuthenticationError: 401.
            RouterError: 413 for a body over the limit.
            RateLimitError: 429 with ``Retry-After``.
        """
        key = self.authenticate(request)
        request.state.api_key_name = key
        if len(raw) > self.max_body_bytes:
            raise too_large(self.max_body_bytes)
        if charge and self.limiter.enabled:
            refusal = self.limiter.take_request(key)
            if refusal is not None:
                raise self._refuse(refusal, key, rid=_rid(request))
        return key

    def rate_headers(self, key: str) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers of ``key`` (empty when it has no limits)."""
        return self.limiter.headers(key) if self.limiter.enabled else {}

    def _refuse(self, refusal: Refusal, key: str, tokens: int | None = None, rid: str = "") -> RateLimitError:
        err = _rate_error(refusal, key, tokens, rid)
        err.headers.update(self.limiter.headers(key))
        return err

    def charge(self, key: str, body: Mapping[str, Any], request_id: str = "") -> TokenCharge | None:
        """Charge the request's estimated tokens to ``key``.

        Returns:
            The charge, to settle with the real usage once the answer is known; None when ``key`` has no
            token limit.

        Raises:
            RateLimitError: 429 with ``Retry-After`` (none when the request alone exceeds the key's budget).
        """
        if not self.limiter.enabled or self.limiter.buckets(key).tokens is None:
            return None
        n = estimate_tokens(body, self.default_completion_tokens)
        return self.charge_tokens(key, n, estimate_prompt_tokens(body), request_id)

    def charge_tokens(self, key: str, tokens: int, prompt_tokens: int, request_id: str = "") -> TokenCharge | None:
        """Charge ``tokens`` (an estimate made by the caller, e.g. the inputs of an embeddings request) to ``key``.

        Returns:
            The charge to settle, or None when ``key`` has no token limit.

        Raises:
            RateLimitError: 429 with ``Retry-After``.
        """
        if not self.limiter.enabled or self.limiter.buckets(key).tokens is None:
            return None
        refusal = self.limiter.take_tokens(key, tokens)
        if refusal is not None:
            raise self._refuse(refusal, key, tokens, rid=request_id)
        return TokenCharge(self.limiter, key, tokens, prompt_tokens)


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def _rate_error(refusal: Refusal, key: str, tokens: int | None = None, rid: str = "") -> RateLimitError:
    logger.info("request_id=%s rate limited key=%s limit=%s retry_after=%.1f", rid, key, refusal.limit,
                refusal.retry_after)
    if math.isinf(refusal.retry_after):
        return RateLimitError(f"Request too large: about {tokens} tokens, more than this key's tokens per "
                              "minute. Lower max_tokens or the prompt.", code="tokens_exceed_limit")
    what = "requests" if refusal.limit == "requests" else "tokens"
    return RateLimitError(f"Rate limit reached for {what} per minute on this API key; retry after "
                          f"{math.ceil(refusal.retry_after)} s.", code="rate_limit_exceeded",
                          retry_after=float(math.ceil(refusal.retry_after)))
