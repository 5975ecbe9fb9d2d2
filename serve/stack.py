"""Start, join, update, watch and stop the stack: a Ray head, the Serve application, readiness, drain.

Used by ``qwen-serve up/down/status``. Without an address Ray runs as the stack's own head process
(``ray start --head``) so the stack survives ``up --detach`` and can be stopped by ``down`` from another
shell. With an address (``--address``, ``RAY_ADDRESS``, ``ray.address``) the application is deployed onto
that running cluster, and ``down`` removes the application only. ``up`` on a running stack updates the
application in place (see ``serve/cluster.py`` for what restarts and what keeps serving).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

STATE_DIR = Path(os.environ.get("QWEN_SERVE_STATE_DIR", "~/.cache/qwen-serve")).expanduser()
STATE_FILE = STATE_DIR / "stack.json"
#: Environment every Ray worker needs (set on the head so all workers inherit it).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING": "0",
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0"),
}


def _ray_bin() -> str:
    cand = Path(sys.executable).with_name("ray")
    return str(cand) if cand.exists() else (shutil.which("ray") or "ray")


def ray_running() -> bool:
    """Whether a local Ray head is up (its GCS address file exists and the GCS port accepts connections).

    ``ray status`` is not used: it fails on token-authenticated clusters whose token is not in the env.
    """
    import socket

    head = local_head_id()
    if head is None:
        return False
    try:
        host, _, port = head.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def local_head_id() -> str | None:
    """The local Ray head's GCS address as its address file names it (None: no local head)."""
    marker = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "ray_current_cluster"
    try:
        return marker.read_text().strip() or None
    except OSError:
        return None


def owns_local_head(state: dict[str, Any]) -> bool:
    """Whether the running local Ray head is the one this stack started (so ``down`` may stop it).

    A head someone else started (``ray start --head`` for other work, another tool's cluster) is never ours,
    nor one that replaced ours since: the saved state names the GCS address of the head the stack started.
    """
    if state.get("owns_cluster") is not True or state.get("address"):
        return False
    saved = state.get("gcs")
    return saved is None or saved == local_head_id()  # None: a state file written before the address was kept


def ingress_env(fleet: Any) -> dict[str, str]:
    """Ray Serve settings for the ingress: direct ingress on the fleet's port, or the classic proxy.

    With direct ingress the router replica itself listens on ``fleet.port`` (Serve allocates ingress ports
    from the ``[min, max)`` range, so the range starts at the fleet's port): no Serve proxy, no Ray hop per
    streamed chunk between the proxy and the router.
    """
    if not fleet.ray.direct_ingress:
        return {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(fleet.port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(fleet.port + fleet.ray.router_replicas),
        "RAY_SERVE_DEFAULT_HTTP_HOST": fleet.host,
        # A replacement router replica must get the same port back at once (no quarantine).
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def proxy_port(fleet: Any) -> int:
    """Port of Ray Serve's HTTP proxy: the fleet's port, or (direct ingress) one out of the router's way.

    In direct-ingress mode Serve still starts a fallback proxy on ``http_options.port``; it must not hold
    the port the router replica listens on.
    """
    return fleet.port + 1000 if fleet.ray.direct_ingress else fleet.port


def gcs_ft_env(fleet: Any) -> dict[str, str]:
    """Environment that makes a head's GCS keep its state in the fleet's Redis (empty without one)."""
    ft = fleet.ray.gcs_fault_tolerance
    if ft is None:
        return {}
    env = {"RAY_REDIS_ADDRESS": ft.redis_address}
    if ft.external_storage_namespace:
        env["RAY_external_storage_namespace"] = ft.external_storage_namespace
    return env


def start_ray(num_cpus: int, env: dict[str, str], out: TextIO) -> bool:
    """Start a local Ray head with ``num_cpus`` logical CPUs (more than cores, so every deployment schedules).

    Returns:
        True when this call started the head, False when a running local head is reused.
    """
    if ray_running():
        out.write("ray: reusing the running local Ray head\n")
        return False
    from serve.cluster import NODE_HEALTH_ENV

    # Node-failure detection for the GCS: the stack's settings unless the shell sets its own.
    full_env = {**NODE_HEALTH_ENV, **os.environ, **RAY_ENV, **env}
    cmd = [_ray_bin(), "start", "--head", f"--num-cpus={num_cpus}", "--include-dashboard=false",
           "--disable-usage-stats"]
    out.write(f"ray: starting a local head ({num_cpus} logical CPUs)\n")
    r = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=180)
    if r.returncode != 0:
        raise RuntimeError("`ray start` failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    return True


def stop_ray(out: TextIO) -> None:
    """Stop the local Ray head and its workers."""
    subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True, text=True, timeout=120)
    out.write("ray: stopped\n")


def wait_port_free(host: str, port: int, timeout_s: float = 60.0) -> None:
    """Wait until ``port`` can be bound (a stack that was just stopped may still hold it).

    Raises:
        RuntimeError: The port stays in use.
    """
    import socket

    t0 = time.monotonic()
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
                return
            except OSError:
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"port {port} on {host} is in use; stop what listens there or pick "
                                       "another --port") from None
        time.sleep(0.5)


def connect(address: str | None, env: dict[str, str] | None = None) -> None:
    """Connect this process to Ray: the cluster at ``address``, else the local head.

    Args:
        address: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; None for the local head.
        env: Job environment (a joined cluster's Serve controller and replicas inherit it).
    """
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": env} if env else None
    ray.init(address=address or "auto", logging_level=logging.WARNING, log_to_driver=False,
             runtime_env=runtime_env)


def app_running() -> bool:
    """Whether the qwen-serve application runs on the connected cluster."""
    from ray import serve

    from serve.app import APP_NAME

    try:
        return APP_NAME in serve.status().applications
    except Exception:  # noqa: BLE001 - Serve not started on this cluster yet
        return False


def deploy(fleet: Any, out: TextIO, *, update: bool = False) -> None:
    """Deploy the fleet's Serve application on the connected cluster (returns without waiting).

    Args:
        fleet: The fleet config.
        out: Progress output.
        update: The application already runs: update it in place. Engines whose settings did not change
            keep their replicas, changed ones are replaced, removed ones stop, new ones start; the router
            takes the new fleet without a restart (``serve/hotswap.py``).
    """
    from ray import serve

    from serve.app import APP_NAME, build_application

    if not update:
        # The fallback proxy only runs on the head: with direct ingress it serves nothing, and proxies on
        # several nodes of one host would fight over its port.
        location = "HeadOnly" if fleet.ray.direct_ingress else "EveryNode"
        # The controller reads the direct-ingress settings from its own environment; on a joined cluster
        # they come from here (a head started by `up` has them already).
        serve.start(proxy_location=location, http_options={"host": fleet.host, "port": proxy_port(fleet)},
                    controller_options={"runtime_env": {"env_vars": {**RAY_ENV, **ingress_env(fleet)}}})
        if fleet.security.engine_auth:  # each fleet start gets its own engine secret (serve.security.engine_secret)
            from serve.security import engine_secret

            engine_secret.rotate()
    app = build_application(fleet)
    serve._run(app, name=APP_NAME, route_prefix="/", _blocking=False)
    verb = "updating in place" if update else "deploying"
    out.write(f"serve: {verb} {len(fleet.deployments)} engine deployment(s) + router\n")


def http_json(url: str, *, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    """Small stdlib HTTP helper: (status, parsed JSON or None)."""
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def serve_app_state() -> dict[str, Any] | None:
    """The qwen-serve application's state in Serve: ``{"status", "message", "deployments": {name: status}}``
    (None when the application is not deployed or Serve does not answer)."""
    from serve.readiness import serve_state

    state = serve_state()
    if state is None:
        return None
    return {"status": state.status, "message": state.message,
            "deployments": {name: d.status for name, d in state.deployments.items()}}


def update_progress(app: dict[str, Any] | None, ready_code: int, ready: Any, fleet: Any) -> tuple[str, str]:
    """Where a rolling update stands: ``("done" | "failed" | "waiting", what it waits for)``.

    Done when Serve runs exactly the new fleet's deployments (application RUNNING, every deployment HEALTHY:
    changed engines replaced, removed ones gone, added ones up) and the router answers ``/ready`` for the new
    fleet (its deployment list is the new fleet's: the live router swapped to it, ``serve/hotswap.py``).

    Args:
        app: :func:`serve_app_state`.
        ready_code: HTTP status of the router's ``/ready`` (0: no answer).
        ready: Its JSON body.
        fleet: The new fleet config.
    """
    from serve.app import ROUTER_DEPLOYMENT
    from serve.deployments import engine_deployment_name

    names = [d.name for d in fleet.deployments]
    want = {engine_deployment_name(n) for n in names} | {ROUTER_DEPLOYMENT}
    if app is None:
        return "waiting", "the Serve application's status"
    if app["status"] == "DEPLOY_FAILED":
        return "failed", f"Serve: deploy failed: {app['message'][:500]}"
    have = dict(app["deployments"])
    if app["status"] != "RUNNING" or set(have) != want:
        busy = sorted(n for n in have if have[n] != "HEALTHY" or n not in want)
        return "waiting", f"Serve {app['status'].lower()}: {', '.join(busy) or 'starting the new deployments'}"
    unhealthy = sorted(n for n, st in have.items() if st != "HEALTHY")
    if unhealthy:
        return "waiting", f"Serve: not healthy yet: {', '.join(unhealthy)}"
    served = set(ready.get("deployments", {})) if isinstance(ready, dict) else set()
    if served != set(names):
        return "waiting", "the router to take the new fleet"
    if ready_code != 200:
        return "waiting", "the router's /ready"
    return "done", "the new fleet is live"


def wait_updated(base_url: str, fleet: Any, timeout_s: float, out: TextIO) -> bool:
    """After an in-place update: wait until the new fleet is live (:func:`update_progress`); True when it is."""
    t0 = time.monotonic()
    last = ""
    while time.monotonic() - t0 < timeout_s:
        code, body = http_json(base_url + "/ready")
        state, what = update_progress(serve_app_state(), code, body, fleet)
        elapsed = time.monotonic() - t0
        if state == "done":
            out.write(f"updated after {elapsed:.0f}s: {what}\n")
            return True
        if state == "failed":
            out.write(f"update failed after {elapsed:.0f}s: {what}\n")
            return False
        if what != last or int(elapsed) % 30 == 0:
            out.write(f"[{elapsed:5.0f}s] update: waiting for {what}\n")
            out.flush()
        last = what
        time.sleep(1.0)
    return False


def save_state(fleet: Any, *, address: str | None = None, owns_cluster: bool = True) -> None:
    """Remember where the running stack listens and whose Ray cluster it runs on (for ``down``, ``status``).

    Args:
        fleet: The fleet config.
        address: The joined cluster's address (None: the local head).
        owns_cluster: The stack started the Ray cluster itself, so ``down`` stops it.
    """
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"url": f"http://{public_host(fleet, address)}:{fleet.port}",
                                      "name": fleet.name, "pid": os.getpid(), "address": address,
                                      "owns_cluster": owns_cluster,
                                      "gcs": local_head_id() if address is None else None}))


def public_host(fleet: Any, address: str | None) -> str:
    """Host clients reach the router at: the bind host, else (wildcard bind, router on the head of a remote
    cluster) the head's host, else 127.0.0.1."""
    host = _client_host(fleet.host)
    if host != "127.0.0.1" or not address or address == "auto" or fleet.ray.router_placement != "head":
        return host
    return address.removeprefix("ray://").rsplit(":", 1)[0] or host


def load_state() -> dict[str, Any]:
    """The saved stack state, or defaults."""
    try:
        return dict(json.loads(STATE_FILE.read_text()))
    except (OSError, ValueError):
        return {"url": "http://127.0.0.1:8000"}


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def drain(base_url: str, timeout_s: float, out: TextIO) -> None:
    """Stop admitting, then wait up to ``timeout_s`` for in-flight requests to finish."""
    status, body = http_json(base_url + "/admin/drain", method="POST")
    if status != 200:
        out.write("drain: router not reachable; stopping anyway\n")
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        st, snap = http_json(base_url + "/v1/status")
        if st != 200 or not isinstance(snap, dict):
            break
        inflight = sum(e["ongoing"] for eps in snap["endpoints"].values() for e in eps)
        if inflight == 0:
            out.write(f"drain: no request in flight after {time.monotonic() - t0:.1f}s\n")
            return
        out.write(f"\rdrain: {inflight} request(s) in flight")
        out.flush()
        time.sleep(0.5)
    out.write("\ndrain: timeout reached; stopping with requests in flight\n")


def remove_app(address: str | None, out: TextIO) -> None:
    """Delete only the qwen-serve application from a cluster the stack joined (the cluster keeps running)."""
    from ray import serve

    from serve.app import APP_NAME

    try:
        connect(address)
        if app_running():
            serve.delete(APP_NAME)
            out.write(f"serve: application {APP_NAME} removed; the Ray cluster keeps running\n")
        else:
            out.write("serve: no qwen-serve application on this cluster\n")
    except Exception as exc:  # noqa: BLE001 - the cluster may be gone
        out.write(f"serve: cluster not reachable ({type(exc).__name__}); nothing removed\n")


def shutdown(out: TextIO) -> None:
    """Stop the stack: remove the application from a joined cluster, or shut Serve down and stop Ray."""
    state = load_state()
    if state.get("owns_cluster") is False:
        remove_app(state.get("address"), out)
        STATE_FILE.unlink(missing_ok=True)
        return
    if ray_running() and not owns_local_head(state):
        remove_app(None, out)
        out.write("ray: the local Ray head was not started by this stack: left running (`ray stop` stops it)\n")
        STATE_FILE.unlink(missing_ok=True)
        return
    if not ray_running():
        out.write("serve: no Ray cluster is running\n")
        stop_ray(out)
        from serve.orphans import reap_orphan_engines

        reap_orphan_engines()
        STATE_FILE.unlink(missing_ok=True)
        return
    try:
        from ray import serve

        connect(None)
        serve.shutdown()
        out.write("serve: shut down\n")
    except Exception as exc:  # noqa: BLE001 - Ray may already be gone
        out.write(f"serve: not running ({type(exc).__name__})\n")
    stop_ray(out)
    from serve.orphans import reap_orphan_engines

    reaped = reap_orphan_engines()
    if reaped:
        out.write(f"reaped {reaped} orphaned vLLM engine process(es)\n")
    STATE_FILE.unlink(missing_ok=True)
