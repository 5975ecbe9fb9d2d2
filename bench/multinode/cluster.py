"""A real multi-node Ray cluster on one machine: a head, worker nodes, a Redis for GCS fault tolerance.

Each node is its own ``ray start``; worker nodes get their own loopback IPs (127.0.0.2, 127.0.0.3, ...; the head
keeps the host's address), its own logical CPUs and a custom resource naming it, so a fleet can
pin an engine to a node (``accelerator.resources: {node-a: 1}``) and the router relays across node
addresses. Used by ``tests/multinode`` and ``bench/multinode/run.py``.

Faults, the way they happen on real hosts:

- :meth:`LocalCluster.kill_node` SIGKILLs every process of a worker node at once (its raylet, its workers,
  the vLLM processes of the engines on it), like a host that loses power.
- :meth:`LocalCluster.kill_gcs` / :meth:`LocalCluster.restart_gcs` kill the head's GCS server and start it
  again with the same command line, like a supervisor (or KubeRay's head pod restart) would; with Redis the
  new GCS reloads the cluster state and the raylets reconnect.

The cluster keeps to itself on a shared machine: its Ray temp dir is its own (``/tmp/ray-mn-<GCS port>``, so
the default ``/tmp/ray`` and its ``ray_current_cluster`` file, which ``ray.init(address="auto")`` reads, stay
another Ray's), and :meth:`LocalCluster.stop` kills only this cluster's processes (never ``ray stop --force``,
which stops every Ray of the user).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


def _ray_bin() -> str:
    cand = Path(sys.executable).with_name("ray")
    return str(cand) if cand.exists() else (shutil.which("ray") or "ray")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def router_port() -> int:
    """The stack's port for a multi-node run: ``QWEN_SERVE_MULTINODE_PORT`` when set, else a free one."""
    value = os.environ.get("QWEN_SERVE_MULTINODE_PORT", "").strip()
    return int(value) if value else free_port()


def wait_port(host: str, port: int, timeout_s: float = 60.0) -> None:
    """Wait until ``host:port`` accepts TCP connections.

    Raises:
        TimeoutError: It does not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} did not open within {timeout_s:.0f}s")


def _kill_tree(pids: list[int]) -> int:
    """SIGKILL the given processes and all their descendants; returns how many were signalled."""
    import psutil

    victims: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        for p in [proc, *proc.children(recursive=True)]:
            victims[p.pid] = p
    for p in victims.values():
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(victims.values()), timeout=10)
    return len(victims)


def _pids_matching(*needles: str) -> list[int]:
    """PIDs of this user's processes whose command line contains every needle."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline", "uids"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.info["uids"].real == os.getuid() and all(n in cmd for n in needles):
                out.append(int(p.info["pid"]))
        except (psutil.Error, AttributeError, TypeError):
            continue
    return out


@dataclass
class Node:
    """One worker node: its ``ray start --block`` process and how it was started."""

    name: str
    ip: str
    num_cpus: int
    resources: dict[str, float]
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class LocalCluster:
    """A head plus worker nodes on one machine, optionally with GCS fault tolerance backed by Redis.

    Args:
        head_cpus: Logical CPUs of the head (the Serve controller and the router run there).
        env: Environment of every node (Ray Serve settings the controller and replicas inherit).
        redis: Start a ``redis-server`` and run the GCS with fault tolerance on it.
        log_dir: Where node and Redis logs go.
    """

    head_cpus: int = 3
    env: dict[str, str] = field(default_factory=dict)
    redis: bool = False
    log_dir: Path = field(default_factory=lambda: Path("/tmp/qwen-serve-multinode"))
    gcs_port: int = 0
    redis_port: int = 0
    nodes: dict[str, Node] = field(default_factory=dict)
    _redis_proc: subprocess.Popen[bytes] | None = None
    _gcs_cmd: list[str] | None = None
    _gcs_env: dict[str, str] | None = None
    _client_port: int = 0

    @property
    def temp_dir(self) -> str:
        """This cluster's Ray temp dir (sessions, sockets, logs); worker nodes take it from the head."""
        return f"/tmp/ray-mn-{self.gcs_port}"

    @property
    def address(self) -> str:
        """The GCS address (``HOST:PORT``) workers and drivers join."""
        return f"127.0.0.1:{self.gcs_port}"

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.env}
        env.pop("RAY_ADDRESS", None)
        # One auth mode for every node and driver: a head that finds ~/.ray/auth_token turns token auth on
        # by itself, and worker nodes started without it are then refused. This cluster is local-only.
        env.setdefault("RAY_AUTH_MODE", "disabled")
        if self.redis:
            env["RAY_REDIS_ADDRESS"] = f"127.0.0.1:{self.redis_port}"
            env["RAY_external_storage_namespace"] = "qwen-serve-multinode"
            # A worker node waits this long for a restarted GCS before it gives up and exits.
            env.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "120")
        return env

    def start(self) -> LocalCluster:
        """Start Redis (when asked) and the head node."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.redis:
            self._start_redis()
        self.gcs_port = self.gcs_port or free_port()
        # Every port this head listens on is picked free here or by Ray: none of a default single-node Ray's
        # fixed ports (6379 GCS, 10001 client server, 52365 dashboard agent), so the two never clash.
        self._client_port = free_port()
        cmd = [_ray_bin(), "start", "--head", f"--port={self.gcs_port}", "--node-ip-address=127.0.0.1",
               f"--ray-client-server-port={self._client_port}", f"--dashboard-agent-listen-port={free_port()}",
               f"--num-cpus={self.head_cpus}", '--resources={"head": 1}', "--include-dashboard=false",
               "--disable-usage-stats", f"--temp-dir={self.temp_dir}"]
        # The head's GCS detects a lost node the way the stack's own head does (serve/cluster.py).
        from serve.cluster import NODE_HEALTH_ENV

        r = subprocess.run(cmd, env={**NODE_HEALTH_ENV, **self._env()}, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError("ray start --head failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
        return self

    def _start_redis(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found (Debian: apt-get install redis-server)")
        self.redis_port = self.redis_port or free_port()
        log = open(self.log_dir / "redis.log", "ab")  # noqa: SIM115 - the process owns it
        self._redis_proc = subprocess.Popen(
            [exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port("127.0.0.1", self.redis_port, 30)

    def add_worker(self, name: str, *, num_cpus: int = 3, resources: dict[str, float] | None = None,
                   wait: bool = True) -> Node:
        """Start a worker node named ``name`` with its own loopback IP and the custom resource ``name``.

        Args:
            name: Node name (also a custom resource of amount 1 on it).
            num_cpus: Logical CPUs.
            resources: More custom resources (an engine pool label).
            wait: Wait until the node is alive in the cluster.
        """
        ip = f"127.0.0.{2 + len(self.nodes)}"
        node = Node(name, ip, num_cpus, {name: 1.0, **(resources or {})})
        self.nodes[name] = node
        self._spawn(node)
        if wait:
            self._wait_joined(node)
        return node

    def _spawn(self, node: Node) -> None:
        import json

        cmd = [_ray_bin(), "start", f"--address={self.address}", f"--node-ip-address={node.ip}",
               f"--num-cpus={node.num_cpus}", f"--resources={json.dumps(node.resources)}", "--block",
               f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
        log = open(self.log_dir / f"node-{node.name}.log", "ab")  # noqa: SIM115 - the process owns it
        node.proc = subprocess.Popen(cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def _wait_joined(self, node: Node, attempts: int = 3, timeout_s: float = 150.0) -> None:
        """Wait until ``node`` is alive; start it again when its ``ray start`` gave up (on a loaded 2-core
        host a raylet can miss ``ray start``'s 30 s registration window)."""
        for _ in range(attempts):
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if node.ip in self.alive_ips():
                    return
                if node.proc is not None and node.proc.poll() is not None:
                    break
                time.sleep(2.0)
            self.kill_node(node.name)
            self._spawn(node)
        raise TimeoutError(f"worker node {node.name} ({node.ip}) did not join")

    def alive_ips(self, timeout_s: float = 60.0) -> set[str]:
        """Node IPs the GCS reports alive (asked from a short-lived driver, so this process stays Ray-free)."""
        code = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))")
        r = subprocess.run([sys.executable, "-c", code], env=self._env(), capture_output=True, text=True,
                           timeout=timeout_s)
        if r.returncode != 0:
            return set()
        import json

        return set(json.loads(r.stdout.strip().splitlines()[-1]))

    def actors(self, class_part: str, timeout_s: float = 60.0) -> list[dict[str, object]]:
        """Alive actors whose class name contains ``class_part``: ``{"ip", "pid", "name", "restarts"}`` each
        (read from the GCS actor table by a short-lived driver)."""
        code = ("import json, ray; from ray._private import state; "
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([{'ip': a['Address']['IPAddress'], 'pid': a['Pid'], 'name': a['ActorClassName'], "
                "'restarts': a['NumRestarts']} for a in state.actors().values() "
                f"if {class_part!r} in a['ActorClassName'] and a['State'] == 'ALIVE']))")
        r = subprocess.run([sys.executable, "-c", code], env=self._env(), capture_output=True, text=True,
                           timeout=timeout_s)
        if r.returncode != 0:
            raise RuntimeError("actor table read failed: " + r.stderr[-1000:])
        import json

        return list(json.loads(r.stdout.strip().splitlines()[-1]))

    def head_ip(self) -> str:
        """The head's node IP (Ray may report the host's address rather than the loopback it was given)."""
        workers = {n.ip for n in self.nodes.values()}
        (ip,) = self.alive_ips() - workers
        return ip

    def node_of_ip(self, ip: str) -> str | None:
        """Name of the worker node with IP ``ip`` (None for the head or an unknown IP)."""
        return next((n.name for n in self.nodes.values() if n.ip == ip), None)

    def wait_nodes(self, timeout_s: float = 120.0) -> None:
        """Wait until the head and every started worker node are alive in the cluster view.

        Raises:
            TimeoutError: Some node is not alive within ``timeout_s``.
        """
        want = {n.ip for n in self.nodes.values() if n.proc and n.proc.poll() is None}
        deadline = time.monotonic() + timeout_s
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen = self.alive_ips()
            if want <= seen and len(seen) > len(want):  # the workers and the head
                return
            time.sleep(1.0)
        raise TimeoutError(f"nodes alive: {sorted(seen)}; wanted {sorted(want)}")

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of worker node ``name`` at once (a host that loses power)."""
        node = self.nodes[name]
        pids = _pids_matching(f"{node.ip}")
        if node.proc is not None:
            pids.append(node.proc.pid)
        killed = _kill_tree(pids)
        if node.proc is not None:
            with contextlib.suppress(Exception):
                node.proc.wait(timeout=10)
        node.proc = None
        return killed

    def restart_node(self, name: str) -> Node:
        """Start worker node ``name`` again (same IP and resources): a replacement host joins."""
        node = self.nodes[name]
        self._spawn(node)
        self._wait_joined(node)
        return node

    def gcs_pid(self) -> int | None:
        """PID of the head's GCS server."""
        pids = _pids_matching("gcs_server", f"--gcs_server_port={self.gcs_port}")
        return pids[0] if pids else None

    def kill_gcs(self) -> None:
        """SIGKILL the head's GCS server, remembering its command line and environment to restart it."""
        pid = self.gcs_pid()
        if pid is None:
            raise RuntimeError("no GCS server process found")
        import psutil

        proc = psutil.Process(pid)
        self._gcs_cmd = proc.cmdline()
        self._gcs_env = proc.environ()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def restart_gcs(self) -> None:
        """Start the GCS server again with the command line it had (reloads its state from Redis)."""
        if self._gcs_cmd is None:
            raise RuntimeError("kill_gcs first")
        log = open(self.log_dir / "gcs-restart.log", "ab")  # noqa: SIM115 - the process owns it
        subprocess.Popen(self._gcs_cmd, env=self._gcs_env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
        wait_port("127.0.0.1", self.gcs_port, 60)

    def stop(self) -> None:
        """Stop every node, Redis, and the vLLM processes the engines left behind."""
        for name in list(self.nodes):
            if self.nodes[name].proc is not None:
                self.kill_node(name)
        # Every Ray process of this cluster names its temp dir on its command line; workers are their children.
        if self.gcs_port:
            # The Ray client server names neither: it is known by its port.
            _kill_tree(_pids_matching(self.temp_dir + "/")
                       + _pids_matching("ray.util.client.server", f"--port={self._client_port} "))
        if self._redis_proc is not None:
            self._redis_proc.kill()
            self._redis_proc.wait(timeout=10)
        from serve.orphans import reap_orphan_engines

        reap_orphan_engines()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
