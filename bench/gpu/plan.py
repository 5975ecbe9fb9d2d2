"""The GPU benchmark's single source of truth: models, engine args, fleet YAML, raw vLLM command, summary.

Raw ``vllm serve`` and the qwen-serve stack get the SAME engine arguments from :data:`MODELS` (the stack
through its fleet YAML's ``engine:`` block, which Ray Serve LLM hands to ``AsyncEngineArgs``; raw vLLM
through the equivalent CLI flags), so any difference measured is the serving path, not the engine.

Subcommands (run by ``bench/gpu/run.sh`` on the device, and locally to check the plan):

- ``fleet MODEL PATH [--frontends N] [--replicas R]``: write the fleet YAML of MODEL (``dense`` or ``moe``) to
  PATH; N engine frontend processes per replica (``engine_frontends``), R replicas sharing the GPU.
- ``raw-cmd MODEL [--api-server-count N]``: print the raw ``vllm serve`` argv (one shell-quoted line).
- ``summarize DIR``: read DIR's compare/run results, write ``summary.json`` and ``results.md`` into DIR.
- ``get MODEL name|dir``: the served model name or the model folder name.
- ``check``: validate both fleets with the project's config models and print the raw commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = os.environ.get("GPU_MODELS_DIR", "/root/models")
GIB = 1024**3
STACK_PORT = 8000
RAW_PORT = 8100
#: Workload of every measurement (GPU.md's: random 512 in / 256 out, ignore_eos).
INPUT_LEN, OUTPUT_LEN = 512, 256

#: Engine arguments shared by raw vLLM and the stack. The KV cache is pinned (kv_cache_memory_bytes) so both
#: get exactly the same number of KV blocks, also when the dense pair shares the GPU and starts in parallel.
#: max_model_len 8192 keeps the router's cheap byte-based context check decisive (no tokenizing).
MODELS: dict[str, dict[str, Any]] = {
    "dense": {
        "dir": "qwen2.5-7b-instruct",
        "name": "qwen2.5-7b",
        "weights_gb": 15.23,  # 7.62 B parameters x 2 bytes (bf16)
        "engine": {
            "load_format": "dummy", "dtype": "bfloat16", "max_model_len": 8192, "max_num_seqs": 1024,
            "max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.45, "kv_cache_memory_bytes": 44 * GIB,
        },
    },
    "moe": {
        "dir": "qwen3-30b-a3b",
        "name": "qwen3-30b-a3b",
        "weights_gb": 61.07,  # 30.5 B parameters x 2 bytes; 3.3 B active per token
        "active_gb": 6.7,
        "engine": {
            "load_format": "dummy", "dtype": "bfloat16", "max_model_len": 8192, "max_num_seqs": 1024,
            "max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.92, "kv_cache_memory_bytes": 64 * GIB,
        },
    },
}
# On an 80 GB card (H100) the MoE's 57 GiB of weights leave ~12 GiB: GPU_MOE_KV_GIB / GPU_MOE_UTIL override the
# MoE's pinned KV cache and memory share for both servers alike (the run records what it used).
if os.environ.get("GPU_MOE_KV_GIB"):
    MODELS["moe"]["engine"]["kv_cache_memory_bytes"] = int(float(os.environ["GPU_MOE_KV_GIB"]) * GIB)
if os.environ.get("GPU_MOE_UTIL"):
    MODELS["moe"]["engine"]["gpu_memory_utilization"] = float(os.environ["GPU_MOE_UTIL"])
#: H200 HBM3e bandwidth by the datasheet, and the device-to-device copy rate measured there (KINDS.md).
HBM_TBPS = 4.8
HBM_MEASURED_TBPS = 4.3


#: Replicas of the dense model sharing the one GPU in the start-up measurement (``fleet dense --replicas 4``):
#: each reserves this share of the GPU and pins its KV cache to a quarter of the pair setting.
#: On an 80 GB card a 7B replica (14.2 GiB of weights) needs more than a fifth: GPU_SHARED_FRACTION and
#: GPU_SHARED_KV_GIB override both (the start-up race does not depend on the KV size).
SHARED_GPU_FRACTION = float(os.environ.get("GPU_SHARED_FRACTION", "0.2"))
SHARED_KV_BYTES = int(float(os.environ.get("GPU_SHARED_KV_GIB", "8")) * GIB)


def fleet_dict(model: str, frontends: int = 0, replicas: int = 1) -> dict[str, Any]:
    """The fleet config of one model: one GPU deployment behind the router, direct ingress.

    Args:
        model: ``dense`` or ``moe``.
        frontends: ``engine_frontends`` of the deployment (vLLM OpenAI-server processes per replica).
        replicas: Replicas; more than one share the GPU (:data:`SHARED_GPU_FRACTION` each).
    """
    m = MODELS[model]
    env = {"VLLM_USE_FLASHINFER_SAMPLER": "0", "VLLM_CACHE_ROOT": os.environ.get("STACK_VLLM_CACHE_ROOT",
                                                                                  "/root/vc-stack")}
    engine = dict(m["engine"])
    accelerator: dict[str, Any] = {"type": "gpu", "count": 1}
    if replicas > 1:
        accelerator["gpu_fraction"] = SHARED_GPU_FRACTION
        engine.update(gpu_memory_utilization=SHARED_GPU_FRACTION, kv_cache_memory_bytes=SHARED_KV_BYTES)
    dep: dict[str, Any] = {
        "name": m["name"],
        "model_path": f"{MODELS_DIR}/{m['dir']}",
        "accelerator": accelerator,
        "replicas": replicas,
        # The router admits every stream and lets the engine queue, like raw vLLM does.
        "max_ongoing_requests": 2048,
        "engine": engine,
    }
    if frontends:
        dep["engine_frontends"] = frontends
    return {
        "name": "gpu-bench",
        "host": "127.0.0.1",
        "port": STACK_PORT,
        "deployments": [dep],
        "router": {"tasks": {"general": {"candidates": [m["name"]]}}},
        "ray": {"num_cpus": 16 if replicas * (2 + frontends) + 2 <= 16 else replicas * (2 + frontends) + 2,
                "env": env},
    }


def raw_cmd(model: str, port: int = RAW_PORT, api_server_count: int = 1) -> list[str]:
    """``python3 -m vllm.entrypoints.cli.main serve ...`` with the same engine args as the stack."""
    m = MODELS[model]
    cmd = ["python3", "-m", "vllm.entrypoints.cli.main", "serve", f"{MODELS_DIR}/{m['dir']}",
           "--served-model-name", m["name"], "--host", "127.0.0.1", "--port", str(port)]
    if api_server_count > 1:
        cmd += ["--api-server-count", str(api_server_count)]
    for key, value in m["engine"].items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is not False and value is not None:
            cmd += [flag, str(value)]
    return cmd


def check() -> int:
    """Validate both fleets with the project's config models (paths not checked) and print the commands."""
    sys.path.insert(0, str(ROOT))
    from serve.config import FleetConfig

    for model in MODELS:
        for frontends in (0, 4):
            fleet = FleetConfig.from_dict(fleet_dict(model, frontends), check_paths=False)
            spec = fleet.deployments[0]
            kwargs = spec.engine_kwargs()
            if kwargs != MODELS[model]["engine"]:
                raise SystemExit(f"{model}: the stack's engine kwargs differ from raw vLLM's: {kwargs}")
            if spec.engine_frontends != frontends:
                raise SystemExit(f"{model}: engine_frontends {spec.engine_frontends} != {frontends}")
        sys.stdout.write(f"{model}: fleet ok, engine kwargs {kwargs}\n  raw: {shlex.join(raw_cmd(model))}\n")
    shared = FleetConfig.from_dict(fleet_dict("dense", 0, replicas=4), check_paths=False).deployments[0]
    sys.stdout.write(f"dense x4: replicas {shared.replicas}, gpu_fraction {shared.accelerator.gpu_fraction}\n")
    return 0


# --------------------------------------------------------------------------------------------- summary
def _load(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _pair(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Figures of stack (a) against raw vLLM (b) from two metric dicts."""
    def ratio(k: str) -> float | None:
        return a[k] / b[k] if a.get(k) is not None and b.get(k) else None

    return {
        "stack_output_tok_s": a["output_throughput"], "raw_output_tok_s": b["output_throughput"],
        "throughput_ratio": ratio("output_throughput"),
        "ttft_p50_ms": [a["median_ttft_ms"], b["median_ttft_ms"]],
        "ttft_p99_ms": [a["p99_ttft_ms"], b["p99_ttft_ms"]],
        "added_ttft_p50_ms": a["median_ttft_ms"] - b["median_ttft_ms"],
        "added_ttft_p99_ms": a["p99_ttft_ms"] - b["p99_ttft_ms"],
        "itl_p90_ms": [a["p90_itl_ms"], b["p90_itl_ms"]], "itl_p90_ratio": ratio("p90_itl_ms"),
        "itl_p99_ms": [a["p99_itl_ms"], b["p99_itl_ms"]],
        "tpot_mean_ms": [a["mean_tpot_ms"], b["mean_tpot_ms"]],
        "completed": [a["completed"], b["completed"]], "failed": [a["failed"], b["failed"]],
        "duration_s": [a["duration"], b["duration"]],
    }


def _model_rows(run_dir: Path, model: str) -> dict[str, Any]:
    """One model's figures: from compare.json (side by side) or from two run results (one after the other)."""
    rows: dict[str, Any] = {}
    for sub in sorted(p for p in run_dir.glob(f"{model}-*") if p.is_dir()):
        load = sub.name.removeprefix(f"{model}-")
        cmp = _load(sub / "compare.json")
        if cmp is not None:
            la, lb = cmp["labels"]
            row = _pair(cmp["endpoints"][la], cmp["endpoints"][lb])
            row["mode"] = "side by side, ABBA rounds"
            row["per_round_ratio"] = cmp.get("per_round_output_throughput_ratio")
        else:
            a, b = _load(sub / "stack" / "results.json"), _load(sub / "raw" / "results.json")
            if a is None or b is None:
                continue
            row = _pair(a, b)
            row["mode"] = "one after the other (same workload and seed)"
        rows[load] = row
    return rows


def _floor_ms(model: str, tbps: float) -> float:
    m = MODELS[model]
    return float(m.get("active_gb", m["weights_gb"])) / (tbps * 1000.0) * 1000.0


def summarize(run_dir: Path) -> dict[str, Any]:
    """Build ``summary.json`` and ``results.md`` in ``run_dir`` from its per-load result folders."""
    doc: dict[str, Any] = {"models": {}, "meta": _load(run_dir / "versions.json") or {}}
    for model in MODELS:
        rows = _model_rows(run_dir, model)
        if not rows:
            continue
        single = rows.get("c1")
        floor = _floor_ms(model, HBM_TBPS)
        if single:
            single["tpot_floor_ms"] = floor
            single["tpot_floor_measured_bw_ms"] = _floor_ms(model, HBM_MEASURED_TBPS)
            single["tpot_over_floor"] = [t / floor for t in single["tpot_mean_ms"]]
        doc["models"][model] = rows
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2))
    (run_dir / "results.md").write_text(render_md(doc))
    return doc


def _order(load: str) -> tuple[int, str]:
    digits = "".join(ch for ch in load if ch.isdigit())
    return (int(digits) if digits else 10**9, load)


def render_md(doc: dict[str, Any]) -> str:
    """The results table (stack vs raw vLLM, per model and concurrency)."""
    lines = ["| model | streams | mode | stack tok/s | raw tok/s | ratio | TTFT p50 +ms | TTFT p99 +ms | "
             "ITL p90 stack/raw ms | ITL p90 ratio | TPOT mean stack/raw ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, rows in doc["models"].items():
        for load in sorted(rows, key=_order):
            r = rows[load]
            mode = "ABBA" if r["mode"].startswith("side") else "sequential"
            ratio = f"{r['throughput_ratio']:.3f}x" if r["throughput_ratio"] else "-"
            itl_ratio = f"{r['itl_p90_ratio']:.3f}x" if r["itl_p90_ratio"] else "-"
            lines.append(
                f"| {MODELS[model]['name']} | {load.removeprefix('c')} | {mode} | {r['stack_output_tok_s']:,.0f} | "
                f"{r['raw_output_tok_s']:,.0f} | {ratio} | {r['added_ttft_p50_ms']:+.1f} | "
                f"{r['added_ttft_p99_ms']:+.1f} | {r['itl_p90_ms'][0]:.2f} / {r['itl_p90_ms'][1]:.2f} | "
                f"{itl_ratio} | {r['tpot_mean_ms'][0]:.2f} / {r['tpot_mean_ms'][1]:.2f} |")
    rounds = [f"- {MODELS[m]['name']}, {load.removeprefix('c')} streams: "
              + ", ".join(f"{x:.3f}" for x in r["per_round_ratio"])
              for m, rows in doc["models"].items() for load, r in sorted(rows.items(), key=lambda kv: _order(kv[0]))
              if r.get("per_round_ratio")]
    if rounds:
        lines += ["", "Output-throughput ratio per ABBA round (rounds 1, 3: stack first; rounds 2, 4: raw vLLM first):",
                  "", *rounds]
    lines += ["", "Single stream (1 concurrent request) TPOT against the memory-bandwidth floor "
              f"(bytes read per decode step / {HBM_TBPS} TB/s):", ""]
    for model, rows in doc["models"].items():
        s = rows.get("c1")
        if s and "tpot_floor_ms" in s:
            lines.append(f"- {MODELS[model]['name']}: stack {s['tpot_mean_ms'][0]:.2f} ms, raw vLLM "
                         f"{s['tpot_mean_ms'][1]:.2f} ms, floor {s['tpot_floor_ms']:.2f} ms -> "
                         f"{s['tpot_over_floor'][0]:.2f}x / {s['tpot_over_floor'][1]:.2f}x the floor")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI of the plan helper."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fleet")
    f.add_argument("model", choices=list(MODELS))
    f.add_argument("path")
    f.add_argument("--frontends", type=int, default=int(os.environ.get("STACK_FRONTENDS", "0")))
    f.add_argument("--replicas", type=int, default=1)
    r = sub.add_parser("raw-cmd")
    r.add_argument("model", choices=list(MODELS))
    r.add_argument("--port", type=int, default=RAW_PORT)
    r.add_argument("--api-server-count", type=int, default=1)
    s = sub.add_parser("summarize")
    s.add_argument("dir")
    g = sub.add_parser("get")
    g.add_argument("model", choices=list(MODELS))
    g.add_argument("key", choices=["name", "dir"])
    sub.add_parser("check")
    a = p.parse_args(argv)
    if a.cmd == "fleet":
        Path(a.path).write_text(yaml.safe_dump(fleet_dict(a.model, a.frontends, a.replicas), sort_keys=False))
    elif a.cmd == "raw-cmd":
        sys.stdout.write(shlex.join(raw_cmd(a.model, a.port, a.api_server_count)) + "\n")
    elif a.cmd == "get":
        sys.stdout.write(str(MODELS[a.model][a.key]) + "\n")
    elif a.cmd == "summarize":
        sys.stdout.write(render_md(summarize(Path(a.dir))))
    else:
        return check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
