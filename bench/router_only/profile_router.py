"""Where the router's CPU goes, per request kind: py-spy samples of the router process under wrk load.

Starts the same FAKE engine and router as :mod:`run` (this checkout, or ``--base REF``), drives one request
kind at a time with the same varied prompts, samples the router with ``py-spy record --format raw`` (needs
``py-spy``: ``pip install py-spy``; root or ptrace rights) and prints, per kind, the share of samples in the
functions that matter (inclusive) and the top functions by own time. ``--raw DIR`` keeps the collapsed stacks
(for flame graphs).

Run: ``.venv/bin/python bench/router_only/profile_router.py [--kinds explicit,auto] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

#: Inclusive shares worth watching: (label, substring of a frame "function (file:line)").
WATCH = (
    ("uvicorn/httptools protocol", "httptools_impl.py"),
    ("starlette/fastapi routing", "routing.py"),
    ("RouterService.handle", "handle (serve/router/service.py"),
    ("prepare", "prepare (serve/router/service.py"),
    ("parse_body", "parse_body (serve/router/service.py"),
    ("validate_request", "validate_request (serve/router/validate.py"),
    ("facts_of", "facts_of (serve/router/facts.py"),
    ("decide", "decide (serve/router/service.py"),
    ("classify", "classify (serve/router/classify/pipeline.py"),
    ("view_of", "view_of (serve/router/classify/extract.py"),
    ("signal families (_collect)", "_collect (serve/router/classify/pipeline.py"),
    ("language", "detect_language (serve/router/classify/language.py"),
    ("linear text_features", "text_features (serve/router/classify/linear.py"),
    ("linear probabilities", "probabilities (serve/router/classify/linear.py"),
    ("choose_deployment", "choose_deployment (serve/router/policy.py"),
    ("dispatch", "dispatch (serve/router/service.py"),
    ("aiohttp client", "aiohttp/"),
    ("logging", "logging/__init__.py"),
    ("prometheus", "prometheus_client"),
)


def summarise(raw: Path, top: int) -> str:
    """Inclusive shares of :data:`WATCH` and the top own-time frames of a py-spy raw (collapsed) file."""
    total = 0
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        for label, needle in WATCH:
            if any(needle in f for f in frames):
                incl[label] += count
        own[frames[-1].split(" (")[0] + " (" + frames[-1].split("/")[-1] if frames else "?"] += count
    lines = [f"samples: {total}", "inclusive:"]
    lines += [f"  {incl[label] / total:6.1%}  {label}" for label, _ in WATCH if total]
    lines += ["own time (top):"] + [f"  {c / total:6.1%}  {name}" for name, c in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default="explicit,auto")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--base", default=None, help="profile the router of this git revision instead")
    ap.add_argument("--raw", default=None, help="keep the collapsed stacks in this directory")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    convs = run.prompts()
    outdir = Path(args.raw or tempfile.mkdtemp(prefix="router-prof-"))
    outdir.mkdir(parents=True, exist_ok=True)
    fake_port, router_port = run.free_port(), run.free_port()
    procs = [run.start(run._FAKE, fake_port, [])]
    tree = run.base_checkout(args.base) if args.base else run.ROOT
    try:
        router = run.start(run._ROUTER, router_port, [f"http://127.0.0.1:{fake_port}"], cwd=tree,
                           log=outdir / "router.log")
        procs.append(router)
        url = f"http://127.0.0.1:{router_port}"
        for kind in args.kinds.split(","):
            path, items = run.bodies(kind, convs)
            script = run.lua_script(items)
            run.wrk(url, path, script, 4, 2)  # warm-up
            raw = outdir / f"{kind}.txt"
            spy_proc = subprocess.Popen([spy, "record", "--pid", str(router.pid), "--rate", str(args.rate),
                                         "--format", "raw", "--nonblocking", "--output", str(raw),
                                         "--duration", str(args.seconds)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = run.cpu_seconds(router.pid)
            r = run.wrk(url, path, script, args.connections, args.seconds)
            used = run.cpu_seconds(router.pid) - before
            spy_proc.wait()
            print(f"=== {kind}: {r['rps']:.0f} req/s, {r['requests'] / used:.0f} req/s per router core "
                  f"(under sampling), non-2xx {r['non_2xx']:.0f}")
            print(summarise(raw, args.top), flush=True)
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        if args.base:
            run.drop_checkout(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
