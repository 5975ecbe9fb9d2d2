"""A timeline of the control plane during a fault: node liveness and Serve's replica states, twice a second.

Run as its own driver process (so the benchmark process stays Ray-free) with the cluster's address as its
argument. It prints one JSON line per poll to stdout::

    {"t": <unix time>, "alive": [node IPs], "replicas": {"<deployment>": {"RUNNING": 1, "STARTING": 1}},
     "actors": {"<actor id>": ["<deployment>", "<state>", "<node IP>", <pid>]}}

``actors`` are the app's Serve replica actors in the GCS actor table: a replacement appears there
(``DEPENDENCIES_UNREADY``/``PENDING_CREATION``) when Serve asks for it and turns ``ALIVE`` once its worker
process has started and the actor class is loaded; its constructor (the engine's start) runs after that.

:class:`Watcher` starts it, collects the lines, and turns them into the phases of a recovery: when the GCS
marked the node dead, when Serve started a replacement replica, and when that replica was RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_CODE = r"""
import json, sys, time
import ray
from ray import serve
from ray._private import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
app = sys.argv[2]
prefix = "ServeReplica:" + app + ":"
while True:
    row = {"t": time.time()}
    try:
        row["alive"] = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
        status = serve.status().applications.get(app)
        row["replicas"] = {} if status is None else {
            name: {str(getattr(k, "value", k)): v for k, v in d.replica_states.items()}
            for name, d in status.deployments.items()}
        row["actors"] = {aid[:12]: [a["ActorClassName"][len(prefix):], a["State"], a["Address"]["IPAddress"],
                                    a["Pid"]]
                         for aid, a in state.actors().items()
                         if a["ActorClassName"].startswith(prefix) and a["State"] != "DEAD"}
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

    def save(self, path: Path) -> None:
        """Write the rows as JSON lines."""
        path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def phases(self, fault_unix: float, dead_ip: str, deployment: str, replicas: int) -> dict[str, Any]:
        """Seconds from the fault until each phase of the recovery; ``None`` for a phase not seen.

        Args:
            fault_unix: Wall time of the fault.
            dead_ip: IP of the lost node.
            deployment: Serve deployment name of the engine deployment (``engine-<model>``).
            replicas: Its replica count.

        Returns:
            ``node_dead_after_s`` (the GCS no longer lists the node alive), ``replica_lost_after_s`` (Serve
            counts fewer than ``replicas`` RUNNING), ``replacement_requested_after_s`` (a new replica actor is
            in the GCS actor table), ``replacement_actor_alive_after_s`` (its worker process runs),
            ``replacement_starting_after_s`` (Serve reports a replica STARTING), ``replicas_running_after_s``
            (``replicas`` RUNNING again), ``replacement_ip``/``replacement_pid``, and ``watch_rows``/``watch_errors``.
        """
        ok = [r for r in self.rows if "error" not in r]
        after = [r for r in ok if r["t"] >= fault_unix]

        def first(pred: Any, rows: list[dict[str, Any]] = after) -> float | None:
            return next((round(r["t"] - fault_unix, 1) for r in rows if pred(r)), None)

        def states(row: dict[str, Any]) -> dict[str, int]:
            return dict(row.get("replicas", {}).get(deployment, {}))

        def engine_actors(row: dict[str, Any]) -> dict[str, list[Any]]:
            return {k: v for k, v in row.get("actors", {}).items() if v[0] == deployment}

        before = {k for r in ok if r["t"] < fault_unix for k in engine_actors(r)}
        new_ids: list[str] = []
        for r in after:
            new_ids = [k for k in engine_actors(r) if k not in before]
            if new_ids:
                break
        new_id = new_ids[0] if new_ids else None
        lost = first(lambda r: states(r).get("RUNNING", 0) < replicas)
        back = None
        if lost is not None:
            back = first(lambda r: r["t"] - fault_unix > lost and states(r).get("RUNNING", 0) >= replicas)
        last = next((engine_actors(r)[new_id] for r in reversed(after) if new_id in engine_actors(r)), None)
        return {
            "node_dead_after_s": first(lambda r: dead_ip not in r.get("alive", [])),
            "replica_lost_after_s": lost,
            "replacement_requested_after_s": None if new_id is None else first(
                lambda r: new_id in engine_actors(r)),
            "replacement_actor_alive_after_s": None if new_id is None else first(
                lambda r: engine_actors(r).get(new_id, ["", ""])[1] == "ALIVE"),
            "replacement_starting_after_s": first(lambda r: states(r).get("STARTING", 0) > 0),
            "replicas_running_after_s": back,
            "replacement_ip": None if last is None else last[2],
            "replacement_pid": None if last is None or not last[3] else int(last[3]),
            "watch_rows": len(after),
            "watch_errors": sum(1 for r in self.rows if r["t"] >= fault_unix and "error" in r),
        }


#: Markers of an engine replica's start in its logs: (phase, file kind, line substring). ``serve``: the
#: replica's Serve log; ``worker``: its worker process's stdout/stderr (vLLM's and its EngineCore's lines);
#: ``core``: the worker's core-worker log (its first line: the process runs).
LOG_MARKERS = (
    ("worker_process_started", "core", ""),
    ("constructor_started", "serve", "Started initializing replica"),
    ("download_task_started", "serve", "Running tasks to download model files"),
    ("engine_core_started", "worker", "(EngineCore"),
    ("engine_worker_started", "worker", "(Worker pid="),
    ("model_loaded", "worker", "Loading weights took"),
    ("engine_ready", "worker", "init engine (profile, create kv cache, warmup model) took"),
    ("engine_started", "serve", "Started vLLM engine"),
    ("constructor_done", "serve", "Finished initializing replica"),
)

_STAMPS = (  # (regex, strptime format): Ray/Serve's own lines, then vLLM's (no year, local time)
    (re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"(?:INFO|WARNING|DEBUG|ERROR) (\d\d-\d\d \d\d:\d\d:\d\d)"), "%m-%d %H:%M:%S"),
)


def _stamp(line: str, year: int) -> float | None:
    for regex, fmt in _STAMPS:
        m = regex.search(line)
        if m is None:
            continue
        text = m.group(1) if "%Y" in fmt else f"{year}-{m.group(1)}"
        t = time.mktime(time.strptime(text, fmt if "%Y" in fmt else "%Y-" + fmt))
        return t + (int(m.group(2)) / 1000 if m.lastindex and m.lastindex > 1 else 0.0)
    return None


def log_phases(logs: Path, fault_unix: float, deployment: str, pid: int | None) -> dict[str, float | None]:
    """Seconds from the fault to each :data:`LOG_MARKERS` phase of the replacement replica's start.

    Args:
        logs: The Ray session's ``logs`` folder (``<temp dir>/session_latest/logs``).
        fault_unix: Wall time of the fault.
        deployment: Serve deployment name of the engine deployment.
        pid: The replacement replica's worker pid (from the actor table); ``None``: only Serve's log is read.

    Returns:
        ``<phase>_s`` per marker, ``None`` for one not found (vLLM's lines have whole seconds only).
    """
    year = time.gmtime(fault_unix).tm_year
    files: dict[str, list[Path]] = {"serve": [], "worker": [], "core": []}
    for f in sorted((logs / "serve").glob(f"replica_*_{deployment}_*.log")):
        with contextlib.suppress(OSError):
            first = f.open(errors="replace").readline()
            t = _stamp(first, year)
            if t is not None and t >= fault_unix - 1:
                files["serve"].append(f)
    if pid is not None:
        files["worker"] = sorted(logs.glob(f"worker-*-{pid}.err")) + sorted(logs.glob(f"worker-*-{pid}.out"))
        files["core"] = sorted(logs.glob(f"python-core-worker-*_{pid}.log"))
    out: dict[str, float | None] = {}
    for phase, kind, needle in LOG_MARKERS:
        found = None
        for f in files[kind]:
            with contextlib.suppress(OSError), f.open(errors="replace") as fh:
                for line in fh:
                    if needle in line and (t := _stamp(line, year)) is not None and t >= fault_unix - 1:
                        found = t if found is None else min(found, t)
                        break
        out[f"{phase}_s"] = None if found is None else round(found - fault_unix, 1)
    return out
