"""Fixtures for router unit tests: a small fleet and FAKE engines (loadtest.fake_server) on local ports."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.router_kit import free_port, make_router

__all__ = ["AppServer", "FakeEngineServer", "fleet_dict", "free_port"]


class AppServer:
    """Any ASGI app served by uvicorn in a thread (``url``, ``stop()``)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(250):
            if self.server.started:
                break
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class FakeEngineServer(AppServer):
    """A FAKE OpenAI engine (loadtest.fake_server) served by uvicorn in a thread."""

    def __init__(self, model: str, **settings: Any) -> None:
        from loadtest.fake_server import create_app

        super().__init__(create_app(models=[model], task_headers=False, **settings))


def fleet_dict(**router_overrides: Any) -> dict[str, Any]:
    """A three-deployment fleet like the demo one (tiny models need not exist)."""
    dep = {"accelerator": {"type": "cpu"}, "engine": {"max_model_len": 2048}, "max_ongoing_requests": 4,
           "max_queued_requests": 4}
    router: dict[str, Any] = {
        "tasks": {
            "code": {"candidates": ["coder", "general"], "system_prompt": "You are a coding assistant.",
                     "sampling": {"temperature": 0.7, "top_p": 0.8}},
            "math": {"candidates": ["general", "moe"], "enable_thinking": True},
            "reasoning": {"candidates": ["moe", "general"], "enable_thinking": True},
            "general": {"candidates": ["general", "moe"], "enable_thinking": False},
            "vision": {"candidates": []},
        },
        "aliases": {"auto": None, "qwen-code": "code"},
        "saturation": {"max_ongoing_ratio": 0.5},
    }
    router.update(router_overrides)
    return {
        "name": "unit",
        "deployments": [
            {"name": "general", "tiny": "qwen3", "model_path": "/nonexistent/general", **dep},
            {"name": "coder", "tiny": "qwen2", "model_path": "/nonexistent/coder", **dep},
            {"name": "moe", "tiny": "qwen3_moe", "model_path": "/nonexistent/moe", **dep},
        ],
        "router": router,
    }


@pytest.fixture(scope="module")
def fake_engines() -> Iterator[dict[str, FakeEngineServer]]:
    """One FAKE engine per fleet deployment (fast: 2 ms TTFT, 2000 tok/s)."""
    engines = {name: FakeEngineServer(name, ttft_s=0.002, tokens_per_s=2000.0)
               for name in ("general", "coder", "moe")}
    yield engines
    for e in engines.values():
        e.stop()


@pytest.fixture
async def router_client(fake_engines: dict[str, FakeEngineServer]) -> AsyncIterator[Any]:
    """An httpx client of the router app (the unit fleet, no keys) over the FAKE engines."""
    async with make_router(fleet_dict(), {n: e.url for n, e in fake_engines.items()}) as (c, _):
        yield c


@pytest.fixture
def fleet() -> Any:
    from serve.config import FleetConfig

    return FleetConfig.from_dict(fleet_dict())


def run(coro: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)
