"""Wire types of the router's OpenAI surface, and the error vocabulary it answers with.

The error models are defined here rather than imported from vLLM so that the router process never imports
torch (vLLM's protocol modules do); the shape is checked against the ``openai`` client in the e2e tests.
The errors themselves and their one factory live in :mod:`serve.errors` (shared with ``serve.security``)
and are re-exported here for the router's modules.
"""

from __future__ import annotations

from pydantic import BaseModel

from serve.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitError,
    RouterError,
    UpstreamError,
    UpstreamTimeoutError,
    error_body,
    error_response,
    sse_error,
)

__all__ = [
    "AuthenticationError", "ErrorInfo", "ErrorResponse", "InvalidRequestError", "ModelNotFoundError",
    "OverloadedError", "RateLimitError", "RouterError", "UpstreamError", "UpstreamTimeoutError", "error_body",
    "error_response", "sse_error",
]


class ErrorInfo(BaseModel):
    """The ``error`` object of an OpenAI error response."""

    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """An OpenAI-shaped error response body."""

    error: ErrorInfo
