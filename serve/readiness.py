"""Waiting for a stack to become ready, and saying why it is not.

``qwen-serve up`` polls the router's ``/ready`` once a second. A bare "0 of 1 engines ready" for ten minutes
tells a user nothing (a placement group that cannot be scheduled, a replica constructor that keeps failing and
a slow first ``torch.compile`` all look the same), so each progress line also carries what Ray Serve says of
every engine that is not ready yet: its deployment status, how many replicas are in which state and Serve's
own message (e.g. "1 replicas that have taken more than 30s to be scheduled ... Resources required ...").
When Serve gives up on the application (``DEPLOY_FAILED``) the wait ends at once with Serve's message; when
the wait times out, :func:`diagnose` prints the same per-engine view plus the tail of each waiting engine's
replica log, so the reason is on the screen rather than in a log directory.

Pure functions (:func:`progress`, :func:`diagnose`) take the router's ``/ready`` body and Serve's state as data
(:func:`serve_state`), so they are unit-tested without Ray.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

#: Where a local Ray head writes Serve's replica logs.
RAY_SERVE_LOGS = "/tmp/ray/session_latest/logs/serve"
#: Serve's message is cut to this many characters in a progress line (the whole message is in :func:`diagnose`).
MESSAGE_CHARS = 160


@dataclass
class EngineState:
    """What Ray Serve reports of one engine deployment.

    Attributes:
        status: Serve's deployment status (``UPDATING``, ``HEALTHY``, ``UNHEALTHY``, ``DEPLOY_FAILED``, ...).
        replicas: Replica count per replica state (``STARTING``, ``PENDING_ALLOCATION``, ``RUNNING``, ...).
        message: Serve's message for the deployment ('' when it has none).
    """

    status: str
    replicas: dict[str, int] = field(default_factory=dict)
    message: str = ""


@dataclass
class ServeState:
    """Ray Serve's view of the qwen-serve application.

    Attributes:
        status: The application's status (``DEPLOYING``, ``RUNNING``, ``DEPLOY_FAILED``, ...).
        message: The application's message.
        deployments: Per Serve deployment name (engines are ``engine-<name>``; the router too), its state.
    """

    status: str
    message: str = ""
    deployments: dict[str, EngineState] = field(default_factory=dict)

    def engine(self, name: str) -> EngineState | None:
        """The state of the engine deployment serving fleet deployment ``name`` (None: unknown to Serve)."""
        from serve.deployments import engine_deployment_name

        return self.deployments.get(engine_deployment_name(name))


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def serve_state() -> ServeState | None:
    """Ask Serve (this process must be connected to Ray) for the application's state; None if it cannot say.

    The one reader of ``serve.status()`` for the stack (``serve.stack.serve_app_state`` condenses it).
    """
    from ray import serve

    from serve.app import APP_NAME

    try:
        app = serve.status().applications.get(APP_NAME)
    except Exception:  # noqa: BLE001 - the controller may be restarting: ask again on the next poll
        return None
    if app is None:
        return None
    deployments = {
        name: EngineState(
            status=_name(d.status), replicas={_name(k): int(v) for k, v in (d.replica_states or {}).items()},
            message=str(d.message or ""))
        for name, d in app.deployments.items()
    }
    return ServeState(status=_name(app.status), message=str(app.message or ""), deployments=deployments)


def _engine_text(name: str, st: EngineState, limit: int | None) -> str:
    reps = ", ".join(f"{n} {s.lower()}" for s, n in sorted(st.replicas.items()) if n) or "no replicas yet"
    text = f"{name}: {st.status.lower()}, {reps}"
    if st.message:
        msg = " ".join(st.message.split())
        text += f" ({msg[:limit] + '...' if limit and len(msg) > limit else msg})"
    return text


def progress(elapsed: float, ready_body: Any, names: list[str], state: ServeState | None) -> tuple[str, str | None]:
    """One progress line of the wait, and a failure message when waiting longer is pointless.

    Args:
        elapsed: Seconds since the wait began.
        ready_body: The router's ``/ready`` JSON (None when the router does not answer yet).
        names: The fleet's deployment names.
        state: Serve's state (:func:`serve_state`), or None.

    Returns:
        ``(line, failed)``: ``failed`` is Serve's reason when the application failed to deploy, else None.
    """
    if state is not None and state.status == "DEPLOY_FAILED":
        return "", f"Serve could not deploy the application: {' '.join(state.message.split()) or 'no message'}"
    if isinstance(ready_body, dict) and "deployments" in ready_body:
        up = [n for n, c in ready_body["deployments"].items() if c > 0]
        line = f"[{elapsed:5.0f}s] engines ready {len(up)}/{len(names)}: {', '.join(up) or '-'}"
        waiting = [n for n in names if n not in up]
    else:
        line = f"[{elapsed:5.0f}s] waiting for the router"
        waiting = list(names)
    if state is not None:
        parts = [_engine_text(n, st, MESSAGE_CHARS) for n in waiting if (st := state.engine(n)) is not None]
        if parts:
            line += " | " + "; ".join(parts)
    return line, None


def _log_tail(name: str, lines: int, log_dir: str) -> list[str]:
    from serve.app import APP_NAME
    from serve.deployments import engine_deployment_name

    files = sorted(glob.glob(os.path.join(log_dir, f"replica_{APP_NAME}_{engine_deployment_name(name)}_*.log")),
                   key=os.path.getmtime)
    if not files:
        return []
    try:
        with open(files[-1], "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return [f"    {files[-1]}:", *(f"      {ln[:300]}" for ln in tail)]


def diagnose(ready_body: Any, names: list[str], state: ServeState | None, *, log_lines: int = 8,
             log_dir: str = RAY_SERVE_LOGS) -> list[str]:
    """Why the stack is not ready: per waiting engine, Serve's whole message and the tail of its replica log.

    Args:
        ready_body: The router's last ``/ready`` JSON (None: the router never answered).
        names: The fleet's deployment names.
        state: Serve's state, or None.
        log_lines: Lines of each waiting engine's newest replica log to show (0: none).
        log_dir: Where Serve's replica logs are (a local head's; on a joined cluster they live on the nodes).

    Returns:
        Lines to print (empty when every engine is ready).
    """
    served = ready_body.get("deployments", {}) if isinstance(ready_body, dict) else {}
    waiting = [n for n in names if not served.get(n)]
    out: list[str] = []
    if not isinstance(ready_body, dict):
        out.append("  the router never answered /ready (its replica may not have started: see Serve's status)")
    if state is None:
        out.append("  Ray Serve's status was not available")
    elif state.message:
        out.append(f"  application {state.status.lower()}: {' '.join(state.message.split())}")
    for n in waiting:
        st = state.engine(n) if state is not None else None
        out.append("  " + (_engine_text(n, st, None) if st is not None else f"{n}: not known to Serve"))
        if log_lines:
            out.extend(_log_tail(n, log_lines, log_dir))
    return out


def wait_ready(base_url: str, timeout_s: float, out: TextIO, names: list[str], *,
               get_json: Callable[[str], tuple[int, Any]] | None = None,
               get_state: Callable[[], ServeState | None] | None = serve_state,
               poll_s: float = 1.0) -> bool:
    """Poll ``/ready`` until every deployment has a live engine, printing progress; True when ready.

    Args:
        base_url: The router's base URL.
        timeout_s: Give up after this long.
        out: Where progress goes.
        names: The fleet's deployment names.
        get_json: ``url -> (status, JSON)`` (default: :func:`serve.stack.http_json`).
        get_state: Serve's state (default: :func:`serve_state`; None: do not ask Serve).
        poll_s: Seconds between polls.

    Returns:
        True when ready; False on time-out or when Serve failed to deploy the application (the reason is
        printed either way).
    """
    if get_json is None:
        from serve.stack import http_json

        get_json = http_json
    t0 = time.monotonic()
    last = ""
    body: Any = None
    state: ServeState | None = None
    tty = hasattr(out, "isatty") and out.isatty()
    while time.monotonic() - t0 < timeout_s:
        status, body = get_json(base_url + "/ready")
        elapsed = time.monotonic() - t0
        if status == 200:
            out.write(f"\rready after {elapsed:.0f}s: {', '.join(names)}".ljust(100) + "\n")
            return True
        state = get_state() if get_state is not None else None
        line, failed = progress(elapsed, body, names, state)
        if failed:
            out.write(("\n" if tty else "") + failed + "\n")
            out.writelines(ln + "\n" for ln in diagnose(body, names, state))
            return False
        key = line.split("] ", 1)[-1]
        if tty:
            out.write("\r" + line.ljust(100))
            out.flush()
        elif key != last or int(elapsed) % 30 == 0:
            out.write(line + "\n")
            out.flush()
        last = key
        time.sleep(poll_s)
    out.write("\n")
    out.write(f"not ready after {timeout_s:.0f}s:\n")
    out.writelines(ln + "\n" for ln in diagnose(body, names, state))
    return False
