"""Multi-node figures: node loss, GCS restart, Serve controller restart and rolling update under load.

Starts a real multi-node Ray cluster on this machine (``bench/multinode/cluster.py``: a head, three
engine-pool worker nodes on their own loopback IPs, a Redis-backed GCS), deploys the stack onto it with
``qwen-serve up --address`` (two tiny Qwen3 engine replicas on two workers, the router on the head), and
runs each fault under steady streaming load (``bench/multinode/load.py``), recording every request.

Figures per scenario: requests, failed requests (and whether they were in flight at the fault), hangs, the
time from the fault until every new request succeeds, and (node loss) the time until the router has both
replicas again. Writes ``bench/results/multinode/results.json`` and ``results.md``.

Usage (it starts Ray and engines: run it under the machine's heavy lock)::

    python bench/multinode/run.py [--out bench/results/multinode]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.multinode.cluster import LocalCluster, router_port  # noqa: E402
from bench.multinode.load import Load, summarize  # noqa: E402
from bench.multinode.watch import Watcher, log_phases  # noqa: E402
from serve.deployments import engine_deployment_name  # noqa: E402
from tests.multinode.fleet import EXTRA, MODEL, POOL, write  # noqa: E402

CONCURRENCY = 4
MAX_TOKENS = 64


def _cli(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)


def _replica_hosts(url: str) -> dict[str, str]:
    try:
        eps = httpx.get(url + "/v1/status", timeout=5).json()["endpoints"].get(MODEL, [])
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    return {str(e["replica"]): str(urlparse(str(e["url"])).hostname) for e in eps}


def _chat_status(url: str, model: str) -> int:
    """HTTP status of a short chat request to ``model`` (0: no answer)."""
    try:
        return httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).status_code
    except httpx.HTTPError:
        return 0


def _run_fault(url: str, fault: Any, *, settle_s: float = 15.0, warm_s: float = 6.0) -> dict[str, Any]:
    load = Load(url, MODEL, concurrency=CONCURRENCY, max_tokens=MAX_TOKENS).start()
    time.sleep(warm_s)
    fault_at = time.monotonic()
    extra = fault() or {}
    time.sleep(settle_s)
    outcomes = load.stop()
    summary = summarize(outcomes, fault_at)
    ok = [o for o in outcomes if o.ok]
    summary["e2e_mean_s"] = round(sum(o.end - o.start for o in ok) / max(1, len(ok)), 3)
    return {**summary, **extra}


def node_loss(cluster: LocalCluster, url: str, env: dict[str, str], timeline: Path | None = None) -> dict[str, Any]:
    """SIGKILL every process of a worker node holding an engine replica; time each phase of the recovery
    (node marked dead, replacement replica started, RUNNING, back in the router's table)."""
    victim_ip = sorted(_replica_hosts(url).values())[0]
    victim = cluster.node_of_ip(victim_ip)
    assert victim is not None
    times: dict[str, Any] = {}
    watcher = Watcher(cluster.address, env)
    if not watcher.wait_first_row():
        watcher.stop()
        raise RuntimeError("the control-plane watcher did not report")

    def fault() -> dict[str, Any]:
        times["unix"] = time.time()
        t0 = time.monotonic()
        cluster.kill_node(victim)
        times["t0"] = t0
        return {"killed_node": victim}

    try:
        result = _run_fault(url, fault, settle_s=10)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            hosts = _replica_hosts(url)
            if len(hosts) == 2 and victim_ip not in hosts.values():
                result["full_capacity_after_s"] = round(time.monotonic() - times["t0"], 1)
                break
            time.sleep(1.0)
        else:
            result["full_capacity_after_s"] = None
        time.sleep(2.0)
    finally:
        watcher.stop()
        if timeline is not None:
            watcher.save(timeline)
    deployment = engine_deployment_name(MODEL)
    result.update(watcher.phases(times["unix"], victim_ip, deployment, replicas=2))
    # The replacement's start, phase by phase, from its own logs (worker process, constructor, vLLM engine).
    logs = Path(cluster.temp_dir) / "session_latest" / "logs"
    result["replacement_start"] = log_phases(logs, times["unix"], deployment, result.get("replacement_pid"))
    return result


def gcs_restart(cluster: LocalCluster, url: str, down_s: float = 10.0) -> dict[str, Any]:
    """Kill the GCS server, keep it down ``down_s``, start it again (Redis-backed)."""

    def fault() -> dict[str, Any]:
        cluster.kill_gcs()
        time.sleep(down_s)
        t = time.monotonic()
        cluster.restart_gcs()
        return {"gcs_down_s": down_s, "gcs_restart_s": round(time.monotonic() - t, 2)}

    result = _run_fault(url, fault)
    t = time.monotonic()
    cluster.wait_nodes(timeout_s=180)
    result["all_nodes_alive_after_restart_s"] = round(time.monotonic() - t, 1)
    return result


def _engine_pids(cluster: LocalCluster) -> list[int]:
    return sorted(int(str(a["pid"])) for a in cluster.actors("ServeReplica:qwen-serve:engine-"))


def controller_restart(cluster: LocalCluster, url: str, recover_s: float = 30.0) -> dict[str, Any]:
    """SIGKILL the Serve controller under load; check the restarted controller kept the engine replicas
    (same actor pids) and the router; then SIGKILL the router replica and time its return on the port
    (no ``down && up``)."""
    (controller,) = cluster.actors("ServeController")
    (router_before,) = cluster.actors("ServeReplica:qwen-serve:router")
    engines_before = _engine_pids(cluster)
    times: dict[str, float] = {}

    def fault() -> dict[str, Any]:
        times["t0"] = time.monotonic()
        os.kill(int(str(controller["pid"])), signal.SIGKILL)
        return {}

    # The load runs while the new controller starts and recovers the replicas it finds.
    result = _run_fault(url, fault, settle_s=recover_s)
    new = [a for a in cluster.actors("ServeController") if a["pid"] != controller["pid"]]
    result["new_controller"] = bool(new)
    engines_after = _engine_pids(cluster)
    (router,) = cluster.actors("ServeReplica:qwen-serve:router")
    result["engines_survived"] = engines_after == engines_before
    result["engine_pids_before_after"] = [engines_before, engines_after]
    result["router_survived"] = router["pid"] == router_before["pid"]
    t0 = time.monotonic()
    os.kill(int(str(router["pid"])), signal.SIGKILL)
    back = None
    while time.monotonic() - t0 < 300:
        try:
            if httpx.get(url + "/ready", timeout=3).status_code == 200:
                back = round(time.monotonic() - t0, 1)
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    result["router_back_after_kill_s"] = back
    return result


def rolling_update(env: dict[str, str], state: Path, port: int, address: str, url: str) -> dict[str, Any]:
    """``up`` with a deployment added, then ``up`` with it removed, under load on the unchanged one."""
    before = _replica_hosts(url)
    load = Load(url, MODEL, concurrency=CONCURRENCY, max_tokens=MAX_TOKENS).start()
    t0 = time.monotonic()
    add = _cli(env, "up", "--config", str(write(state / "extra.yaml", port, extra=True)), "--address", address,
               "--detach", "--timeout", "600")
    t1 = time.monotonic()
    # `up` returns once the new fleet is live: the added deployment answers at once.
    extra_at_return = _chat_status(url, EXTRA)
    rem = _cli(env, "up", "--config", str(write(state / "fleet.yaml", port)), "--address", address,
               "--detach", "--timeout", "600")
    t2 = time.monotonic()
    removed_at_return = _chat_status(url, EXTRA)
    time.sleep(5)
    outcomes = load.stop()
    result = summarize(outcomes)
    result.update({"add_rc": add.returncode, "add_s": round(t1 - t0, 1), "remove_rc": rem.returncode,
                   "remove_s": round(t2 - t1, 1), "added_status_when_up_returned": extra_at_return,
                   "removed_status_when_up_returned": removed_at_return,
                   "unchanged_replicas_kept": _replica_hosts(url) == before})
    return result


def main() -> int:
    """Run every scenario once on a fresh cluster; write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "multinode"))
    ap.add_argument("--scenarios", default="",
                    help="comma-separated subset of rolling_update,gcs_restart,controller_restart,node_loss")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(os.environ.get("QWEN_SERVE_STATE_DIR") or "/tmp/qwen-serve-multinode-bench")
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QWEN_SERVE_STATE_DIR": str(state), "RAY_AUTH_MODE": "disabled"}  # as the cluster's
    env.pop("RAY_ADDRESS", None)
    port = router_port()
    url = f"http://127.0.0.1:{port}"
    cluster = LocalCluster(redis=True, head_cpus=3, log_dir=state / "logs")
    results: dict[str, Any] = {}
    if args.scenarios and (out / "results.json").exists():  # a subset run replaces only its scenarios
        results = json.loads((out / "results.json").read_text())
    results.update({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "load": {"concurrency": CONCURRENCY, "max_tokens": MAX_TOKENS, "stream": True}})
    try:
        t0 = time.monotonic()
        cluster.start()
        for name in ("node-a", "node-b", "node-c"):
            # One after another: a loaded 2-core host registers them more reliably than all at once.
            cluster.add_worker(name, num_cpus=3, resources={POOL: 1})
        cluster.wait_nodes()
        this_run: dict[str, Any] = {"utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                    "cluster_start_s": round(time.monotonic() - t0, 1)}
        up = _cli(env, "up", "--config", str(write(state / "fleet.yaml", port)), "--address", cluster.address,
                  "--detach", "--timeout", "600")
        if up.returncode != 0:
            raise RuntimeError(up.stdout[-2000:] + up.stderr[-2000:])
        this_run["stack_up_s"] = round(time.monotonic() - t0, 1)
        if not args.scenarios:  # a subset run keeps the full run's figures and records its own per scenario
            results.update({k: v for k, v in this_run.items() if k != "utc"})
        for name, run in (("rolling_update", lambda: rolling_update(env, state, port, cluster.address, url)),
                          ("gcs_restart", lambda: gcs_restart(cluster, url)),
                          ("controller_restart", lambda: controller_restart(cluster, url)),
                          ("node_loss", lambda: node_loss(cluster, url, env, out / "node_loss_timeline.jsonl"))):
            if args.scenarios and name not in args.scenarios.split(","):
                continue
            sys.stderr.write(f"[multinode] {name} ...\n")
            load_before = os.getloadavg()[0]
            results[name] = run()
            # The host is shared: the 1-minute load average around each scenario says how quiet it was.
            results[name]["host_load_1m"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
            if args.scenarios:
                results[name]["run"] = this_run
            sys.stderr.write(f"[multinode] {name}: {json.dumps(results[name])}\n")
        down = _cli(env, "down", "--timeout", "5", timeout=300)
        down_ok = down.returncode == 0 and len(cluster.alive_ips()) >= 3
        this_run["down_left_cluster_running"] = down_ok
        if not args.scenarios:
            results["down_left_cluster_running"] = down_ok
    finally:
        _cli(env, "down", "--timeout", "1", timeout=300)
        cluster.stop()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(render_md(results))
    sys.stderr.write((out / "results.md").read_text())
    return 0


#: Node-loss phases in order: (key, what it is). Control plane from the watcher, the replacement's start from
#: its logs, the last from the router's table.
_PHASES = (
    ("replica_lost_after_s", "Serve counts fewer than 2 replicas RUNNING"),
    ("node_dead_after_s", "the GCS marks the node dead"),
    ("replacement_requested_after_s", "the replacement replica actor is in the GCS actor table"),
    ("worker_process_started_s", "its worker process runs (on the spare node)"),
    ("replacement_actor_alive_after_s", "the actor is ALIVE (replica code and vLLM imported)"),
    ("constructor_started_s", "the replica constructor starts"),
    ("download_task_started_s", "Ray Serve LLM's per-node download task starts"),
    ("engine_core_started_s", "vLLM's EngineCore process is up (spawned, vLLM imported)"),
    ("engine_worker_started_s", "its CPU worker process is up (spawned, vLLM imported)"),
    ("model_loaded_s", "model weights loaded"),
    ("engine_ready_s", "engine ready (KV cache allocated)"),
    ("engine_started_s", "Ray Serve LLM has the engine"),
    ("constructor_done_s", "replica constructor done (vLLM's OpenAI app built, record published)"),
    ("replicas_running_after_s", "Serve counts 2 replicas RUNNING"),
    ("full_capacity_after_s", "the router's table has 2 replicas again (none on the lost node)"),
)


def node_loss_phases_md(s: dict[str, Any], others: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The node-loss recovery, phase by phase (seconds after the kill), as Markdown lines.

    Args:
        s: The ``node_loss`` figures.
        others: More node-loss runs to show beside it (column title -> figures), e.g. before a change.
    """
    if not s:
        return []
    runs = {**(others or {}), str(s.get("column", "this run")): s}

    def flat(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, **(r.get("replacement_start") or {})}

    def cell(r: dict[str, Any], key: str) -> str:
        value = flat(r).get(key)
        return "-" if value is None else str(value)

    run = s.get("run") or {}
    when = f"; run of {run['utc']} UTC, stack up {run.get('stack_up_s')} s" if run else ""
    lines = ["", f"Node loss, phase by phase (seconds after the kill; replacement on {s.get('replacement_ip')}{when}):",
             "", "| phase | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {what} | " + " | ".join(cell(r, k) for r in runs.values()) + " |" for k, what in _PHASES]
    lines.append("| host load (1-min average, before/after) | "
                 + " | ".join(str(r.get("host_load_1m", "-")) for r in runs.values()) + " |")
    return lines


def render_md(r: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    rows = [("scenario", "requests", "failed", "failed in flight", "hangs", "all new requests OK after",
             "other")]
    for name in ("rolling_update", "gcs_restart", "controller_restart", "node_loss"):
        s = r.get(name)
        if not s:
            continue
        other = {k: v for k, v in s.items() if k not in {"requests", "failed", "failed_in_flight", "hangs",
                                                        "recovered_after_s", "errors", "failed_after",
                                                        "replacement_start", "run", "column"} and k not in _PHASES}
        rec = s.get("recovered_after_s")
        rows.append((name, str(s["requests"]), str(s["failed"]), str(s.get("failed_in_flight", "-")),
                     str(s["hangs"]), "-" if rec is None else f"{rec} s",
                     ", ".join(f"{k}={v}" for k, v in other.items())))
    lines = ["# Multi-node figures (one machine: head + 3 worker nodes, Redis-backed GCS)", "",
             f"Streaming load: {r['load']['concurrency']} concurrent chat streams of {r['load']['max_tokens']} "
             f"tokens to a 2-replica tiny Qwen3 deployment (one replica per worker node), router on the head. "
             f"Cluster start {r.get('cluster_start_s')} s, stack up {r.get('stack_up_s')} s.", ""]
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "---|" * len(rows[0]))
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    lines += node_loss_phases_md(r.get("node_loss") or {}, r.get("node_loss_compared"))
    if r.get("node_loss"):
        lines += ["", "The watcher's rows of the node-loss run (node liveness, Serve replica states, replica actors "
                  "twice a second): `node_loss_timeline.jsonl`."]
    lines += ["", f"`down` removed the application and left the cluster running: {r.get('down_left_cluster_running')}",
              "", "Produced by `bench/multinode/run.py`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
