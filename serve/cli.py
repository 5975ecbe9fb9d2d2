"""``qwen-serve``: up, down, status, models, route, render, make-tiny-models, batch.

Heavy modules (Ray, vLLM) are imported inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _load_fleet(args: argparse.Namespace, check_engine_keys: bool = True) -> Any:
    from serve.config import load_fleet, load_profile

    check = check_engine_keys
    fleet = (load_fleet(args.config, check_engine_keys=check) if getattr(args, "config", None)
             else load_profile(args.profile, check_engine_keys=check))
    if getattr(args, "port", None):
        fleet = fleet.model_copy(update={"port": args.port})
    return fleet


def _add_fleet_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--profile", default="demo", help="fleet profile under deploy/profiles (default: demo)")
    g.add_argument("--config", help="path to a fleet config YAML")


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack and wait until every deployment is ready."""
    from serve import readiness, stack
    from serve.tiny import build_fleet_tiny_models

    out = sys.stdout
    fleet = _load_fleet(args)
    tiny = [d for d in fleet.deployments if d.tiny]
    if tiny:
        out.write(f"models: checking {len(tiny)} tiny model(s)\n")
        for path in build_fleet_tiny_models(fleet):
            out.write(f"  {path}\n")
    address, owns, update = _prepare_ray(args, fleet, out)
    stack.save_state(fleet, address=address, owns_cluster=owns)  # before deploying: `down` works if it fails
    stack.deploy(fleet, out, update=update)
    base = f"http://{stack.public_host(fleet, address)}:{fleet.port}"
    # A rolling update returns once the new fleet serves, not while the old one still answers /ready.
    ready = (stack.wait_updated(base, fleet, args.timeout, out) if update
             else readiness.wait_ready(base, args.timeout, out, [d.name for d in fleet.deployments]))
    if not ready:
        out.write("the stack is not ready; see `qwen-serve status` and the Ray logs (/tmp/ray/session_latest/logs)\n")
        return 1
    out.write(f"\nqwen-serve `{fleet.name}` is up: {base}/v1  (models: {', '.join(d.name for d in fleet.deployments)})\n")
    out.write(f"try:\n  curl {base}/v1/chat/completions -H 'content-type: application/json' \\\n"
              "    -d '{\"model\": \"auto\", \"messages\": [{\"role\": \"user\", \"content\": \"Write a python "
              "function that reverses a list\"}], \"max_tokens\": 32}' -i\n")
    if args.detach:
        return 0
    out.write("serving in the foreground; Ctrl-C drains and stops\n")
    stop = {"now": False}

    def _sig(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, _sig)
    signal.signal(signal.SIGTERM, _sig)
    while not stop["now"]:
        time.sleep(0.5)
    stack.drain(base, args.drain_timeout, out)
    stack.shutdown(out)
    return 0


def _prepare_ray(args: argparse.Namespace, fleet: Any, out: Any) -> tuple[str | None, bool, bool]:
    """Join the given cluster or start (or reuse) the local head, and connect to it.

    Returns:
        ``(address or None, whether the stack owns the cluster, whether the application already runs)``.
    """
    from serve import stack
    from serve.cluster import job_env, resolve_address

    address = resolve_address(getattr(args, "address", None), fleet)
    ingress = stack.ingress_env(fleet)
    if address is not None:
        out.write(f"ray: joining the cluster at {address} (down removes the application only)\n")
        stack.connect(address, job_env(fleet, ingress))
        return address, False, stack.app_running()
    owns = False
    if stack.ray_running():
        # A head this stack did not start stays up on `down` (only the application is removed).
        owns = stack.owns_local_head(stack.load_state())
        stack.connect(None)
        if stack.app_running():
            return None, owns, True
        if not owns:
            out.write("ray: using the running local Ray head (not started by qwen-serve: `down` leaves it "
                      "running)\n")
    stack.wait_port_free(fleet.host, fleet.port)
    num_cpus = fleet.ray.num_cpus or max(8, 2 * len(fleet.deployments) + 4)
    started = stack.start_ray(num_cpus, {**fleet.ray.env, **ingress, **stack.gcs_ft_env(fleet)}, out)
    stack.connect(None)
    return None, started or owns, False


def cmd_down(args: argparse.Namespace) -> int:
    """Drain and stop the running stack."""
    from serve import stack

    st = stack.load_state()
    stack.drain(args.url or st["url"], args.timeout, sys.stdout)
    stack.shutdown(sys.stdout)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the deployments, their replicas and readiness."""
    from serve import stack
    from serve.autoscale.report import deployment_summary

    url = args.url or stack.load_state()["url"]
    code, ready = stack.http_json(url + "/ready")
    _, snap = stack.http_json(url + "/v1/status")
    if args.json:
        print(json.dumps({"url": url, "ready": ready, "status": snap}, indent=2))  # noqa: T201
        return 0 if code == 200 else 1
    if code == 0:
        print(f"no stack answers at {url}")  # noqa: T201
        return 1
    print(f"{url}: {'READY' if code == 200 else 'NOT READY'}")  # noqa: T201
    for name, eps in (snap or {}).get("endpoints", {}).items():
        print(f"  {name}: {deployment_summary(name, eps, snap or {})}")  # noqa: T201  # HOOK(autoscale)
        for e in eps:
            print(f"    {e['replica']} {e['url']} ongoing={e['ongoing']} served={e['served']} "  # noqa: T201
                  f"healthy={e['healthy']}{_engine_figures(e.get('engine'))}")
    return 0 if code == 200 else 1


def _engine_figures(engine: dict[str, Any] | None) -> str:
    """The engine's own figures of one replica row of ``/v1/status`` (empty when it reports none)."""
    if not engine:
        return ""
    rate = engine.get("hit_rate")
    hits = "-" if rate is None else f"{100 * rate:.0f}%"
    return (f" | engine running={engine.get('running', 0)} waiting={engine.get('waiting', 0)} "
            f"kv={100 * float(engine.get('kv_usage', 0.0)):.0f}% prefix-cache hits={hits}")


def cmd_models(args: argparse.Namespace) -> int:
    """Print the Qwen catalog with computed sizing."""
    from serve.catalog.report import models_table

    print(models_table(gpu_type=args.gpu, json=args.json))  # noqa: T201
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Show where a request would go (remote ``/v1/route`` if a stack answers, else computed locally)."""
    from serve import stack

    src = args.input
    if src == "-":
        text = sys.stdin.read()
    elif Path(src).is_file():
        text = Path(src).read_text()
    else:
        text = src
    try:
        body = json.loads(text)
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        body = {"messages": [{"role": "user", "content": text}]}
    body.setdefault("model", "auto")
    url = args.url or (None if args.local else stack.load_state()["url"])
    if url:
        import urllib.request

        req = urllib.request.Request(url + "/v1/route", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                print(json.dumps(json.loads(r.read()), indent=2, ensure_ascii=False))  # noqa: T201
                return 0
        except OSError:
            if args.url:
                print(f"no stack answers at {url}", file=sys.stderr)  # noqa: T201
                return 1
    from serve.router.offline import route_offline

    # A dry run from the config: no engine starts, so vLLM is not imported to check engine key names.
    print(json.dumps(route_offline(_load_fleet(args, check_engine_keys=False), body), indent=2,  # noqa: T201
                     ensure_ascii=False))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Render the Ray Serve config or the KubeRay RayService of a fleet."""
    from serve.render import render_main

    return int(render_main(args.config or args.profile, args.format, out=sys.stdout))


def cmd_tiny(args: argparse.Namespace) -> int:
    """Build tiny random-weight Qwen models (the demo fleet's, or one architecture into DIR)."""
    from serve.tiny import TINY_ARCHS, build_fleet_tiny_models, build_tiny_model

    if args.dir:
        archs = [args.arch] if args.arch else list(TINY_ARCHS)
        for arch in archs:
            print(build_tiny_model(arch, Path(args.dir) / f"tiny-{arch}", force=args.force))  # type: ignore[arg-type]  # noqa: T201
        return 0
    for p in build_fleet_tiny_models(_load_fleet(args), force=args.force):
        print(p)  # noqa: T201
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Run an OpenAI batch file through the running stack (resumable)."""
    from serve import stack
    from serve.batch import run_batch

    url = args.url or stack.load_state()["url"]
    return run_batch(args.input, args.output, base_url=url, concurrency=args.concurrency,
                     api_key=args.api_key or os.environ.get("QWEN_SERVE_API_KEY"))


def build_parser() -> argparse.ArgumentParser:
    """The ``qwen-serve`` argument parser."""
    p = argparse.ArgumentParser(prog="qwen-serve", description=__doc__)
    p.add_argument("--log-json", action="store_true", help="JSON log lines")
    sub = p.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="start the stack (Ray + Serve: engines + router), join a cluster, or update "
                        "a running stack in place")
    _add_fleet_args(up)
    up.add_argument("--port", type=int)
    up.add_argument("--address", help="deploy onto this running Ray cluster (auto, HOST:PORT, ray://HOST:PORT; "
                    "default: RAY_ADDRESS, else the fleet's ray.address, else start a local head)")
    up.add_argument("--detach", action="store_true", help="return once ready; the stack keeps running")
    up.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for readiness")
    up.add_argument("--drain-timeout", type=float, default=30.0)
    up.set_defaults(fn=cmd_up)

    down = sub.add_parser("down", help="drain in-flight requests, then stop the stack")
    down.add_argument("--url")
    down.add_argument("--timeout", type=float, default=30.0, help="seconds to let in-flight requests finish")
    down.set_defaults(fn=cmd_down)

    st = sub.add_parser("status", help="deployments, replicas, readiness")
    st.add_argument("--url")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)

    mo = sub.add_parser("models", help="the Qwen catalog with computed sizing")
    mo.add_argument("--json", action="store_true")
    mo.add_argument("--gpu", default="H200", help="GPU type for the GPUs-needed column")
    mo.set_defaults(fn=cmd_models)

    ro = sub.add_parser("route", help="where would this request go? (text, JSON body, or a file)")
    ro.add_argument("input", help="prompt text, a chat-completions JSON body, a file, or - for stdin")
    _add_fleet_args(ro)
    ro.add_argument("--url", help="ask this running stack")
    ro.add_argument("--local", action="store_true", help="compute locally from the fleet config")
    ro.set_defaults(fn=cmd_route)

    re_ = sub.add_parser("render", help="render the Ray Serve config or the KubeRay RayService")
    _add_fleet_args(re_)
    re_.add_argument("--format", choices=["serve", "rayservice"], default="serve")
    re_.set_defaults(fn=cmd_render)

    ti = sub.add_parser("make-tiny-models", help="build tiny random-weight Qwen models")
    ti.add_argument("dir", nargs="?", help="directory for tiny-<arch> models (default: the profile's paths)")
    _add_fleet_args(ti)
    from serve.demokit import TINY_ARCHS

    ti.add_argument("--arch", choices=list(TINY_ARCHS))
    ti.add_argument("--force", action="store_true")
    ti.set_defaults(fn=cmd_tiny)

    ba = sub.add_parser("batch", help="run an OpenAI batch JSONL file through the stack (resumable)")
    ba.add_argument("input")
    ba.add_argument("output")
    ba.add_argument("--url")
    ba.add_argument("--concurrency", type=int, default=16)
    ba.add_argument("--api-key")
    ba.set_defaults(fn=cmd_batch)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``qwen-serve``."""
    from serve.logs import configure_logging

    args = build_parser().parse_args(argv)
    configure_logging(json_format=args.log_json, level=logging.WARNING if args.cmd in ("route", "render",
                      "models", "status") else logging.INFO)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - CLI boundary: one readable line, not a traceback
        from serve.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"config error: {exc}", file=sys.stderr)  # noqa: T201
            return 2
        if isinstance(exc, RuntimeError):
            print(f"error: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
