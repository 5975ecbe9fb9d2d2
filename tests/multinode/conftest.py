"""A real multi-node Ray cluster on this machine with the stack deployed onto it by ``qwen-serve up --address``.

One head (the Serve controller and the router), three worker nodes advertising the engine pool (two hold the
two engine replicas, the third is the room a lost replica is rescheduled into), each with its own loopback IP,
and a ``redis-server`` backing the GCS (fault tolerance). Module-scoped (the tests live in one module, which
``tests/conftest.py`` runs first, so this cluster is gone before the e2e session starts its stack); stopped with
``qwen-serve down`` (which must leave the cluster running) and then the cluster itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.multinode.cluster import LocalCluster, router_port
from tests.multinode.fleet import POOL, write

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``qwen-serve`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


@dataclass
class ClusterStack:
    """The running cluster, the stack's URL and what the CLI needs to act on it."""

    cluster: LocalCluster
    url: str
    port: int
    env: dict[str, str]
    state: Path

    def up(self, *, extra: bool = False) -> subprocess.CompletedProcess[str]:
        """``qwen-serve up --address`` with the (changed) fleet: a rolling update when it already runs."""
        config = write(self.state / ("fleet-extra.yaml" if extra else "fleet.yaml"), self.port, extra=extra)
        return cli("up", "--config", str(config), "--address", self.cluster.address, "--detach",
                   "--timeout", "600", env=self.env)


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    """The multi-node cluster with the stack on it (engines on workers, router on the head)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it): "
                    "the GCS fault-tolerance tests need a real Redis")
    # No check for a Ray already running here: this cluster has its own ports and Ray temp dir and stops only
    # its own processes (bench/multinode/cluster.py), so it and a default local Ray leave each other alone.
    state = tmp_path_factory.mktemp("multinode")
    env = {**os.environ, "QWEN_SERVE_STATE_DIR": str(state), "RAY_AUTH_MODE": "disabled"}  # as the cluster's
    env.pop("RAY_ADDRESS", None)
    cluster = LocalCluster(redis=True, head_cpus=3, log_dir=state / "logs")
    port = router_port()
    stack = ClusterStack(cluster, f"http://127.0.0.1:{port}", port, env, state)
    t0 = time.monotonic()
    try:
        cluster.start()
        for name in ("node-a", "node-b", "node-c"):
            # One after another: a loaded 2-core host registers them more reliably than all at once.
            cluster.add_worker(name, num_cpus=3, resources={POOL: 1})
        cluster.wait_nodes()
        up = stack.up()
        if up.returncode != 0:
            pytest.fail(f"qwen-serve up --address failed ({up.returncode}):\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        sys.stderr.write(f"\n[multinode] cluster + stack ready on :{port} after {time.monotonic() - t0:.0f}s\n")
        yield stack
    finally:
        cli("down", "--timeout", "5", env=env, timeout=300)
        cluster.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's tests unless ``QWEN_SERVE_MULTINODE_TESTS=1`` (``make test-multinode``): they need
    a ``redis-server`` and start their own four-node cluster, about 20 minutes of a 2-core machine."""
    if os.environ.get("QWEN_SERVE_MULTINODE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="multi-node cluster tests: run with `make test-multinode`")
    for item in items:
        if "/tests/multinode/" in str(item.path):
            item.add_marker(skip)
