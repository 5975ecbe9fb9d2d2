"""How long a tiny vLLM engine takes to start on this machine, outside Ray: the floor of a node-loss recovery.

A replacement engine replica is three Python processes that each import vLLM before the engine serves: the
replica itself, vLLM's EngineCore (spawned: vLLM's V1 engine always runs in its own process) and, on CPU, the
EngineCore's worker (vLLM's CPU platform always uses its multiprocessing executor). This measures, in fresh
processes with the multi-node fleet's engine settings and environment, ``import vllm`` alone, and an
``AsyncLLM`` from nothing to ready (import included), with the 1-minute load average around each.

Usage (it starts engines: run it under the machine's heavy lock)::

    python bench/multinode/engine_start.py [--model ~/.cache/qwen-serve/tiny/mn-qwen3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.multinode.fleet import ENGINE_THREADS, multinode_fleet  # noqa: E402

_IMPORT = "import time; t = time.monotonic(); import vllm; print(time.monotonic() - t)"
_ENGINE_START = r"""
import asyncio, json, sys, time
t0 = time.monotonic()
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.v1.engine.async_llm import AsyncLLM
t_import = time.monotonic() - t0

async def main():
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=sys.argv[1], **json.loads(sys.argv[2])))
    ready = time.monotonic() - t0
    engine.shutdown()
    return ready

ready = asyncio.run(main())
print(json.dumps({"import_s": round(t_import, 1), "ready_s": round(ready, 1)}))
"""


def _run(code: str, *args: str) -> tuple[str, float, list[float]]:
    env = {**os.environ, **ENGINE_THREADS, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1",
           "HF_HUB_OFFLINE": "1"}
    load = [round(os.getloadavg()[0], 1)]
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t
    load.append(round(os.getloadavg()[0], 1))
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return r.stdout.strip().splitlines()[-1], wall, load


def main() -> int:
    """Measure and print (or write) the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(Path("~/.cache/qwen-serve/tiny/mn-qwen3").expanduser()))
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    out, _, load = _run(_IMPORT)
    result: dict[str, object] = {"import_vllm_s": round(float(out), 1), "import_host_load_1m": load}
    engine = dict(multinode_fleet(0)["deployments"][0]["engine"])  # the fleet's engine settings
    out, wall, load = _run(_ENGINE_START, args.model, json.dumps(engine))
    result.update({"engine": engine, **{f"async_llm_{k}": v for k, v in json.loads(out).items()},
                   "async_llm_process_wall_s": round(wall, 1), "engine_host_load_1m": load})
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
