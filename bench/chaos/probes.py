"""Probes of a local stack shared by the chaos bench and the e2e resilience tests.

- Engine metrics: Ray Serve LLM exports vLLM's metrics through Ray (``ray_vllm_*``) on the node's metrics
  export port (``/tmp/ray/session_latest/metrics_export_port_*``); the engines' own ``/metrics`` does not
  carry the vLLM gauges (the Ray stat logger replaces vLLM's Prometheus one).
- Replica processes: the engine's private HTTP port (from the router's ``/v1/status``) is listened on by the
  ``ServeReplica:qwen-serve:engine-<name>`` process; psutil maps the port to its pid.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import signal
import time
from urllib.parse import urlparse

import httpx
import psutil

logger = logging.getLogger(__name__)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+([-+0-9.eEinfNa]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def ray_metrics_url(session_dir: str = "/tmp/ray/session_latest") -> str | None:
    """URL of the local Ray node's Prometheus metrics, or None when no Ray session is found."""
    files = glob.glob(os.path.join(session_dir, "metrics_export_port_*"))
    if not files:
        return None
    with open(files[0]) as f:
        port = f.read().strip()
    return f"http://127.0.0.1:{port}/metrics" if port.isdigit() else None


def engine_metric(name: str, model: str | None = None, url: str | None = None,
                  labels: dict[str, str] | None = None) -> float:
    """Sum of ``ray_vllm_<name>`` samples (optionally of one ``model_name`` and extra labels).

    Args:
        name: vLLM metric name without prefix, e.g. ``num_requests_running``.
        model: Deployment (vLLM ``model_name``) to keep; None sums all.
        url: Ray metrics URL (default: :func:`ray_metrics_url`).
        labels: Other labels that must match.

    Returns:
        The sum (0.0 when nothing matches).
    """
    url = url or ray_metrics_url()
    if url is None:
        raise RuntimeError("no local Ray session: cannot read engine metrics")
    text = httpx.get(url, timeout=10).text
    want = {**(labels or {}), **({"model_name": model} if model else {})}
    total = 0.0
    full = "ray_vllm_" + name
    for line in text.splitlines():
        if not line.startswith(full):
            continue
        m = _SAMPLE.match(line)
        if m is None or m.group(1) != full:
            continue
        got = dict(_LABEL.findall(m.group(2) or ""))
        if all(got.get(k) == v for k, v in want.items()):
            total += float(m.group(3))
    return total


def wait_metric(name: str, model: str, pred: object, timeout_s: float = 30.0, interval_s: float = 0.1,
                labels: dict[str, str] | None = None) -> tuple[bool, float, float]:
    """Poll an engine metric until ``pred(value)`` holds.

    Returns:
        ``(ok, seconds waited, last value)``.
    """
    t0 = time.monotonic()
    value = float("nan")
    while True:
        value = engine_metric(name, model, labels=labels)
        if pred(value):  # type: ignore[operator]
            return True, time.monotonic() - t0, value
        if time.monotonic() - t0 > timeout_s:
            return False, time.monotonic() - t0, value
        time.sleep(interval_s)


#: Ray exports engine metrics every ~10 s (``metrics_report_interval_ms``): wait this long for the last value.
EXPORT_SETTLE_S = 22.0


def settled_metric(name: str, model: str, settle_s: float = EXPORT_SETTLE_S) -> float:
    """The metric's value once Ray's export has caught up: after ``settle_s``, polled until it is stable."""
    time.sleep(settle_s)
    last = engine_metric(name, model)
    for _ in range(10):
        time.sleep(2.0)
        value = engine_metric(name, model)
        if value == last:
            return value
        last = value
    return last


def replica_urls(base_url: str, deployment: str, headers: dict[str, str] | None = None) -> list[dict[str, object]]:
    """The router's view of a deployment's engine endpoints (``GET /v1/status``)."""
    r = httpx.get(base_url + "/v1/status", headers=headers, timeout=10)
    r.raise_for_status()
    return list(r.json()["endpoints"].get(deployment, []))


def pid_listening_on(url: str) -> int | None:
    """Pid of the local process listening on ``url``'s port (None when not found or not local)."""
    port = urlparse(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def kill_replica(url: str) -> tuple[int, list[int]]:
    """SIGKILL the engine replica process serving ``url`` (a crash, no clean-up).

    Returns:
        ``(pid, child pids)``; the children (vLLM engine-core and workers) are left to die on their own, see
        :func:`reap_orphans`.
    """
    pid = pid_listening_on(url)
    if pid is None:
        raise RuntimeError(f"no local process listens on {url}")
    children = [c.pid for c in psutil.Process(pid).children(recursive=True)]
    logger.info("killing engine replica pid %d (%d children)", pid, len(children))
    os.kill(pid, signal.SIGKILL)
    return pid, children


def reap_orphans(pids: list[int], grace_s: float = 15.0) -> int:
    """Wait for the killed replica's children to exit; SIGKILL the ones still alive after ``grace_s``.

    Returns:
        How many had to be killed (0: vLLM's processes noticed their parent's death).
    """
    deadline = time.monotonic() + grace_s
    alive = [p for p in pids if psutil.pid_exists(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in alive if _alive(p)]
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return len(alive)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_ready(base_url: str, timeout_s: float = 300.0) -> float:
    """Poll ``/ready`` until 200; returns the seconds waited (raises TimeoutError)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if httpx.get(base_url + "/ready", timeout=5).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f}s")
