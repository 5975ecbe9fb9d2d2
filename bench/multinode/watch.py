"""A timeline of the control plane during a fault: node liveness and Serve's replica states, twice a second.

Run as its own driver process (so the benchmark process stays Ray-free) with the cluster's address as its
argument. It prints one JSON line per poll to stdout::

    {"t": <unix time>, "alive": [node IPs], "replicas": {"<deployment>": {"RUNNING": 1, "STARTING": 1}}}

:class:`Watcher` starts it, collects the lines, and turns them into the phases of a recovery: when the GCS
marked the node dead, when Serve started a replacement replica, and when that replica was RUNNING.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

_CODE = r"""
import json, sys, time
import ray
from ray import serve
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
app = sys.argv[2]
while True:
    row = {"t": time.time()}
    try:
        row["alive"] = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
        status = serve.status().applications.get(app)
        row["replicas"] = {} if status is None else {
            name: {str(getattr(k, "value", k)): v for k, v in d.replica_states.items()}
            for name, d in status.deployments.items()}
    except Exception as exc:  # the GCS or controller may be down mid-fault: record it, keep polling
        row["error"] = type(exc).__name__
    print(json.dumps(row), flush=True)
    time.sleep(0.5)
"""


class Watcher:
    """Runs the watcher driver and keeps its rows.

    Args:
        address: The Ray cluster's GCS address.
        env: Environment for the driver (the cluster's auth settings).
        app: The Serve application name.
    """

    def __init__(self, address: str, env: dict[str, str], app: str = "qwen-serve") -> None:
        self.rows: list[dict[str, Any]] = []
        self._proc = subprocess.Popen([sys.executable, "-c", _CODE, address, app], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.rows.append(json.loads(line))
            except ValueError:
                continue

    def wait_first_row(self, timeout_s: float = 60.0) -> bool:
        """Wait until the driver has connected and reported once."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.rows:
            time.sleep(0.2)
        return bool(self.rows)

    def stop(self) -> None:
        """Stop the driver."""
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def phases(self, fault_unix: float, dead_ip: str, deployment: str, replicas: int) -> dict[str, float | None]:
        """Seconds from the fault until: the node was no longer alive, a new replica was STARTING (or
        past it), and ``replicas`` were RUNNING again; ``None`` for a phase not seen."""

        def first(pred: Any) -> float | None:
            for row in self.rows:
                if row["t"] >= fault_unix and "error" not in row and pred(row):
                    return round(row["t"] - fault_unix, 1)
            return None

        def states(row: dict[str, Any]) -> dict[str, int]:
            return dict(row.get("replicas", {}).get(deployment, {}))

        node_dead = first(lambda r: dead_ip not in r["alive"])
        running_after = [r for r in self.rows if r["t"] >= fault_unix and "error" not in r]
        lost = first(lambda r: states(r).get("RUNNING", 0) < replicas)
        starting = first(lambda r: states(r).get("STARTING", 0) > 0 or states(r).get("PENDING_MIGRATION", 0) > 0)
        back = None
        if lost is not None:
            back = next((round(r["t"] - fault_unix, 1) for r in running_after
                         if r["t"] - fault_unix > lost and states(r).get("RUNNING", 0) >= replicas), None)
        return {"node_dead_after_s": node_dead, "replica_lost_after_s": lost,
                "replacement_starting_after_s": starting, "replicas_running_after_s": back}
