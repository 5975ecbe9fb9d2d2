"""The typed seams of the router: what it needs from its collaborators, as Protocols.

The router is wired from parts that tests replace: the admission guard (API keys, rate limits), the task
classifier and the endpoint registry (``serve.router.upstream``). These Protocols say exactly what the
request path calls on each, so a replacement needs nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI
    from starlette.requests import Request

    from serve.router.classify.types import Classification
    from serve.router.facts import RequestFacts
    from serve.security.usage import TokenCharge


class Admission(Protocol):
    """Admission control before any engine sees a request (``serve.security.Guard``)."""

    def install(self, app: FastAPI) -> None:
        """Add what must wrap the app (the body-size limit)."""

    async def admit(self, request: Request, raw: bytes, charge: bool = True) -> str:
        """Authenticate and rate-limit one request; returns the key's name.

        Raises:
            serve.errors.RouterError: 401 (key), 413 (body), 429 (rate).
        """

    def charge(self, key: str, body: Mapping[str, Any], request_id: str = "") -> TokenCharge | None:
        """Charge a request's estimated tokens to the key (None when the key has no token limit)."""

    def charge_tokens(self, key: str, tokens: int, prompt_tokens: int, request_id: str = "") -> TokenCharge | None:
        """Charge an estimate the caller made (e.g. an embeddings request's inputs) to the key."""

    def rate_headers(self, key: str) -> dict[str, str]:
        """The key's ``x-ratelimit-*`` headers."""


class TaskClassifier(Protocol):
    """Picks a task for a request that names a virtual model (``serve.router.classify.Classifier``)."""

    def classify(self, request: RequestFacts | Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> Classification:
        """Classify one request; the reason and signal details never hold prompt text."""
