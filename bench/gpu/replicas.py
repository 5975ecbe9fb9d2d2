"""Replica routing on one H200 (issue 9): round-robin vs prefix affinity over the same engine.

One stack, one start: two deployments of the SAME Qwen2.5-7B-shaped engine, each with two replicas sharing the
GPU (``gpu_fraction``), one routed round-robin (``q7-rr``) and one by prefix affinity (``q7-aff``). The load
tester's ``compare`` alternates them in ABBA rounds on the same workload, so the only difference measured is
the replica policy. Each replica's KV cache is pinned small enough that the shared-prefix working set fits
in the two replicas' caches together but not in one: round-robin makes every replica hold every prefix,
affinity gives each replica half.

Qwen2.5-VL on the GPU has its own plan (``vl.sh``): a fifth engine here only slowed the start-up.

Subcommands:

- ``fleet PATH``: write the fleet YAML.
- ``workload NAME``: print the load tester's workload arguments of NAME (without tokenizer/model/url).
- ``summarize DIR``: write ``summary.json`` and ``results.md`` from DIR's compare results and status snapshots.
- ``check``: validate the fleet with the project's config models.
- ``sweep DIR``: capacity at a TTFT p99 SLO from a stream-count sweep (``sweep.md``, ``sweep.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from plan import _load  # the sibling GPU plan's JSON reader (this file runs as a script from bench/gpu)

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = os.environ.get("GPU_MODELS_DIR", "/root/models")
GIB = 1024**3
KV_PER_TOKEN = 57_344  # Qwen2.5-7B: 28 layers x 4 KV heads x 128 x (K, V) x 2 bytes
#: Per replica: 8 GiB of KV = 149,796 tokens.
KV_BYTES = 8 * GIB
ENGINE = {
    "load_format": "dummy", "dtype": "bfloat16", "max_model_len": 8192, "max_num_seqs": 256,
    "max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.2, "kv_cache_memory_bytes": KV_BYTES,
}
POLICIES = {"q7-rr": {"policy": "round_robin"}, "q7-aff": {"policy": "prefix_affinity"}}
#: name -> (workload arguments, streams, prompts, warm-up). Shared prefix: 80 prefixes x 3,000 tokens =
#: 240k tokens, 1.6x one replica's cache, 0.8x both together.
WORKLOADS: dict[str, tuple[list[str], int, int, int]] = {
    "shared-prefix": (["--dataset", "shared-prefix", "--num-prefixes", "80", "--prefix-len", "3000",
                       "--random-input-len", "64", "--random-output-len", "64"], 64, 640, 80),
    "multi-turn": (["--dataset", "multi-turn", "--turns", "6", "--random-input-len", "300",
                    "--random-output-len", "100"], 64, 96, 0),
    # 64 conversations on 64 streams, 5 turns of 700 in / 100 out: the live histories grow to 64 x 4,000 =
    # 256k tokens, more than one replica's cache (150k) but not more than two; at 300 in they fit in one.
    "multi-turn-long": (["--dataset", "multi-turn", "--turns", "5", "--random-input-len", "700",
                         "--random-output-len", "100"], 64, 64, 0),
    "random": (["--dataset", "random", "--random-input-len", "512", "--random-output-len", "128"], 64, 512, 32),
}


def fleet_dict() -> dict[str, Any]:
    """Two policies over the same engine: 2 replicas each, a fifth of the GPU per replica."""
    env = {"VLLM_USE_FLASHINFER_SAMPLER": "0", "VLLM_CACHE_ROOT": os.environ.get("STACK_VLLM_CACHE_ROOT",
                                                                                  "/root/vc-stack")}
    deps: list[dict[str, Any]] = [{
        "name": name,
        "model_path": f"{MODELS_DIR}/qwen2.5-7b-instruct",
        "accelerator": {"type": "gpu", "count": 1, "gpu_fraction": 0.2},
        "replicas": 2,
        "replica_routing": routing,
        "max_ongoing_requests": 1024,
        "engine": dict(ENGINE),
    } for name, routing in POLICIES.items()]
    return {
        "name": "gpu-replicas",
        "host": "127.0.0.1",
        "port": 8000,
        "deployments": deps,
        "router": {"default_task": "general", "aliases": {"auto": None},
                   "tasks": {"general": {"candidates": ["q7-aff"]}}},
        "ray": {"num_cpus": 16, "env": env},
    }


def check() -> int:
    """Validate the fleet with the project's config models (paths not checked)."""
    sys.path.insert(0, str(ROOT))
    from serve.config import FleetConfig

    fleet = FleetConfig.from_dict(fleet_dict(), check_paths=False)
    for d in fleet.deployments:
        sys.stdout.write(f"{d.name}: {d.replicas} x gpu {d.accelerator.gpu_fraction}, "
                         f"{d.replica_routing.policy}, {d.engine_kwargs()}\n")
    sys.stdout.write(f"KV tokens per 7B replica: {KV_BYTES // KV_PER_TOKEN:,}\n")
    return 0


# --------------------------------------------------------------------------------------------- summary
def _hits(before: Any, after: Any, deployment: str) -> list[dict[str, Any]]:
    """Per-replica request and prefix-cache deltas of one deployment between two /v1/status snapshots."""
    def rows(snap: Any) -> dict[str, dict[str, Any]]:
        return {r["replica"]: r for r in (snap or {}).get("endpoints", {}).get(deployment, [])}

    b, a = rows(before), rows(after)
    out = []
    for rid in sorted(a):
        ea, eb = a[rid].get("engine") or {}, (b.get(rid, {}).get("engine") or {})
        q = ea.get("prefix_queries", 0) - eb.get("prefix_queries", 0)
        h = ea.get("prefix_hits", 0) - eb.get("prefix_hits", 0)
        out.append({"replica": rid, "requests": a[rid]["served"] - b.get(rid, {}).get("served", 0),
                    "prefix_queries": q, "prefix_hits": h, "hit_rate": h / q if q else None})
    return out


def summarize(run_dir: Path) -> dict[str, Any]:
    """Affinity (B) against round-robin (A) per workload, with each replica's prefix-cache hit rate."""
    doc: dict[str, Any] = {"workloads": {}, "meta": _load(run_dir / "versions.json") or {}}
    for name in WORKLOADS:
        cmp = _load(run_dir / name / "compare.json")
        if cmp is None:
            continue
        rr, aff = (cmp["endpoints"][lab] for lab in cmp["labels"])
        before, after = _load(run_dir / name / "status-before.json"), _load(run_dir / name / "status-after.json")
        doc["workloads"][name] = {
            "throughput": [rr["output_throughput"], aff["output_throughput"]],
            "throughput_ratio": aff["output_throughput"] / rr["output_throughput"],
            "request_goodput": [rr.get("request_goodput"), aff.get("request_goodput")],
            "ttft_p50_ms": [rr["median_ttft_ms"], aff["median_ttft_ms"]],
            "ttft_p99_ms": [rr["p99_ttft_ms"], aff["p99_ttft_ms"]],
            "e2el_p99_ms": [rr["p99_e2el_ms"], aff["p99_e2el_ms"]],
            "failed": [rr["failed"], aff["failed"]],
            # compare reports A/B (round-robin / affinity) per round; this table reads affinity / round-robin
            "per_round_ratio": [1 / r for r in cmp.get("per_round_output_throughput_ratio") or [] if r],
            "replicas": {"q7-rr": _hits(before, after, "q7-rr"), "q7-aff": _hits(before, after, "q7-aff")},
        }
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2))
    (run_dir / "results.md").write_text(render_md(doc))
    return doc


def _rate(rows: list[dict[str, Any]]) -> str:
    return " / ".join("-" if r["hit_rate"] is None else f"{100 * r['hit_rate']:.0f} % ({r['requests']} req)"
                      for r in rows)


def render_md(doc: dict[str, Any]) -> str:
    """The results table: affinity vs round-robin per workload."""
    lines = ["| workload | RR tok/s | affinity tok/s | ratio | TTFT p50 RR / aff ms | TTFT p99 RR / aff ms | "
             "goodput RR / aff req/s | prefix hits per replica RR | prefix hits per replica affinity |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, w in doc["workloads"].items():
        g = w["request_goodput"]
        good = f"{g[0]:.2f} / {g[1]:.2f}" if None not in g else "-"
        lines.append(
            f"| {name} | {w['throughput'][0]:,.0f} | {w['throughput'][1]:,.0f} | {w['throughput_ratio']:.2f}x | "
            f"{w['ttft_p50_ms'][0]:,.0f} / {w['ttft_p50_ms'][1]:,.0f} | {w['ttft_p99_ms'][0]:,.0f} / "
            f"{w['ttft_p99_ms'][1]:,.0f} | {good} | {_rate(w['replicas']['q7-rr'])} | "
            f"{_rate(w['replicas']['q7-aff'])} |")
    rounds = [f"- {n}: " + ", ".join(f"{x:.3f}" for x in w["per_round_ratio"])
              for n, w in doc["workloads"].items() if w.get("per_round_ratio")]
    if rounds:
        lines += ["", "Throughput ratio (affinity / round-robin) per ABBA round:", "", *rounds]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- sweep
def _sweep_points(sweep_dir: Path) -> dict[int, dict[str, tuple[float, float]]]:
    """streams -> label -> (output tok/s, TTFT p99 ms), from ``c<N>.json`` and the grep'd ``console.txt``."""
    points: dict[int, dict[str, tuple[float, float]]] = {}
    for f in sweep_dir.glob("c[0-9]*.json"):
        cmp = _load(f)
        points[int(f.stem[1:])] = {lab: (cmp["endpoints"][lab]["output_throughput"],
                                         cmp["endpoints"][lab]["p99_ttft_ms"]) for lab in cmp["labels"]}
    console = sweep_dir / "console.txt"
    if console.exists():  # compare's table: metric, A (round-robin), B (affinity), ...
        streams, rows = 0, {}
        for line in [*console.read_text().splitlines(), "## end"]:
            if line.startswith("## "):
                if streams and streams not in points:
                    points[streams] = {lab: (rows["output_throughput"][i], rows["p99_ttft_ms"][i])
                                       for i, lab in enumerate(("round-robin", "affinity"))}
                streams, rows = int(line[4:]) if line[3:4] == "c" else 0, {}
            elif line.split()[:1] in (["output_throughput"], ["p99_ttft_ms"]):
                parts = line.split()
                rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return dict(sorted(points.items()))


def sweep(sweep_dir: Path, slos_ms: tuple[float, ...] = (500, 1000, 1500, 2000)) -> str:
    """Capacity per TTFT p99 SLO from a stream-count sweep: ``sweep.md``, ``capacity.json``, ``sweep.png``.

    The same summary as ``qwen-loadtest compare --concurrency-list`` (``loadtest.capacity``); this entry
    point exists for a sweep whose per-level JSON did not all come back from the device.
    """
    sys.path.insert(0, str(ROOT))
    from loadtest.capacity import capacity_table, summarize_capacity
    from loadtest.plots import capacity_curves

    pts = _sweep_points(sweep_dir)
    points = {lab: [{"output_throughput": p[lab][0], "p99_ttft_ms": p[lab][1]} for p in pts.values()]
              for lab in ("affinity", "round-robin")}
    doc = summarize_capacity(list(pts), points, "p99_ttft_ms", slos_ms)
    (sweep_dir / "capacity.json").write_text(json.dumps(doc, indent=2))
    md = capacity_table(doc)
    (sweep_dir / "sweep.md").write_text(md)
    (sweep_dir / "sweep.png").write_bytes(capacity_curves(doc))
    return md


def main(argv: list[str] | None = None) -> int:
    """CLI of the plan helper."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fleet").add_argument("path")
    sub.add_parser("workload").add_argument("name", choices=list(WORKLOADS))
    sub.add_parser("summarize").add_argument("dir")
    sub.add_parser("check")
    sub.add_parser("sweep").add_argument("dir")
    a = p.parse_args(argv)
    if a.cmd == "fleet":
        Path(a.path).write_text(yaml.safe_dump(fleet_dict(), sort_keys=False))
    elif a.cmd == "workload":
        args, streams, prompts, warmup = WORKLOADS[a.name]
        sys.stdout.write(" ".join([*args, "--max-concurrency", str(streams), "--num-prompts", str(prompts),
                                   "--warmup", str(warmup)]) + "\n")
    elif a.cmd == "summarize":
        sys.stdout.write(render_md(summarize(Path(a.dir))))
    elif a.cmd == "sweep":
        sys.stdout.write(sweep(Path(a.dir)))
    else:
        return check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
