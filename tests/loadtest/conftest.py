"""Fixtures: fake OpenAI servers served by uvicorn in a thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from loadtest.fake_server import create_app
from loadtest.testing import serve_in_thread


@pytest.fixture(scope="session")
def fake_factory() -> Iterator[Callable[..., str]]:
    """Start a fake server with the given settings; returns its base URL (stopped at session end)."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> str:
            return stack.enter_context(serve_in_thread(create_app(**kwargs)))

        yield start


@pytest.fixture(scope="session")
def fake_url(fake_factory: Callable[..., str]) -> str:
    """A fast fake server: TTFT 5 ms, 2000 tokens/s, exact prompt token counts, thinking support."""
    return fake_factory(
        ttft_s=0.005, tokens_per_s=2000.0, natural_len=6, exact_prompt_tokens=True, reasoning_tokens=2
    )
