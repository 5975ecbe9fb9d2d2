"""Benchmark: the qwen-serve stack (and Ray Serve LLM's default app) against raw vLLM, side by side.

Starts everything itself on this machine, on one tiny Qwen3 model with the same engine arguments:

1. raw vLLM's OpenAI server (``python -m vllm.entrypoints.openai.api_server``), kept up for the whole run;
2. arm ``qwen-serve``: the stack (Ray Serve + router, direct ingress) with one deployment of the model;
3. arm ``ray-serve-llm``: Ray Serve LLM's ``build_openai_app`` (its default multi-model path), the anchor.

Each arm runs ``qwen-loadtest compare`` against raw vLLM in ABBA rounds (same prompts, same arrival times,
the two endpoints never loaded at once), so every ratio is measured side by side in one run. Results:
``bench/results/stack_vs_vllm/<arm>/compare.json`` and a summary (``summary.json``, ``summary.md``).

Run from the repo root with no other stack running: ``.venv/bin/python bench/stack_vs_vllm/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
ENGINE = {"max_model_len": 2048, "enforce_eager": True, "dtype": "bfloat16"}
MODEL = "qwen3-general"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                print(f"  {what} ready after {time.monotonic() - t0:.0f}s", flush=True)
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"{what} not ready after {timeout:.0f}s")


def start_raw_vllm(model_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1"}
    cmd = [PY, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name",
           MODEL, "--port", str(port), "--host", "127.0.0.1", "--max-model-len", str(ENGINE["max_model_len"]),
           "--enforce-eager", "--dtype", "bfloat16"]
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def compare(a_url: str, a_label: str, b_url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [PY, "-m", "loadtest.cli", "compare", "--a-base-url", a_url, "--a-label", a_label, "--a-model", MODEL,
           "--b-base-url", b_url, "--b-label", "raw-vllm", "--b-model", MODEL, "--dataset", "random",
           "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len), "--ignore-eos",
           "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency),
           "--warmup", str(args.warmup), "--rounds", str(args.rounds), "--output", str(out), "--no-progress"]
    print("  " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return dict(json.loads((out / "compare.json").read_text()))


def arm_qwen_serve(model_dir: Path, raw_url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    port = free_port()
    fleet = {"name": "bench", "port": port, "ray": {"num_cpus": 6},
             "deployments": [{"name": MODEL, "model_path": str(model_dir), "tiny": "qwen3",
                              "accelerator": {"type": "cpu"}, "engine": ENGINE, "max_ongoing_requests": 256}],
             "router": {"tasks": {"general": {"candidates": [MODEL]}}}}
    cfg = Path(tempfile.mkdtemp()) / "fleet.yaml"
    cfg.write_text(yaml.safe_dump(fleet))
    env = {**os.environ, "QWEN_SERVE_STATE_DIR": str(cfg.parent)}
    t0 = time.monotonic()
    subprocess.run([PY, "-m", "serve.cli", "up", "--config", str(cfg), "--detach", "--timeout", "600"],
                   check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    print(f"  qwen-serve ready after {time.monotonic() - t0:.0f}s", flush=True)
    try:
        return compare(f"http://127.0.0.1:{port}", "qwen-serve", raw_url, args, out)
    finally:
        subprocess.run([PY, "-m", "serve.cli", "down", "--timeout", "5"], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_RAYLLM_DRIVER = """
import sys, time, ray
from ray import serve
from ray.serve.llm import LLMConfig, build_openai_app
port, model_dir = int(sys.argv[1]), sys.argv[2]
ray.init(num_cpus=6, include_dashboard=False)
cfg = LLMConfig(model_loading_config={"model_id": "%s", "model_source": model_dir},
                engine_kwargs=%r, placement_group_config={"bundles": [{"CPU": 1}]},
                deployment_config={"autoscaling_config": {"min_replicas": 1, "max_replicas": 1}},
                runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1"}})
serve.start(http_options={"host": "127.0.0.1", "port": port})
serve.run(build_openai_app({"llm_configs": [cfg]}), blocking=False)
print("READY", flush=True)
while True:
    time.sleep(3600)
""" % (MODEL, ENGINE)  # noqa: UP031


def arm_ray_serve_llm(model_dir: Path, raw_url: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    log = out.parent / "ray-serve-llm.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([PY, "-c", _RAYLLM_DRIVER, str(port), str(model_dir)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:
            try:
                r = httpx.post(url + "/v1/chat/completions", timeout=10, headers={"authorization": "Bearer x"},
                               json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                     "max_tokens": 1})
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        print(f"  ray-serve-llm ready after {time.monotonic() - t0:.0f}s", flush=True)
        return compare(url, "ray-serve-llm", raw_url, args, out)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        subprocess.run([str(Path(PY).with_name("ray")), "stop", "--force"], capture_output=True)


def summarize(results: dict[str, dict[str, Any]], args: argparse.Namespace, out_dir: Path) -> None:
    """Write summary.json / summary.md from each arm's compare.json (ratios and deltas vs raw vLLM)."""
    rows = {}
    lines = ["| arm vs raw vLLM | throughput ratio | TTFT p50 delta (ms) | TTFT p99 delta (ms) | ITL p90 ratio | "
             "ITL p99 ratio | per-round ratio min-max |", "|---|---|---|---|---|---|---|"]
    for arm, res in results.items():
        row = {
            "throughput_ratio": res["ratios"]["output_throughput"],
            "ttft_p50_delta_ms": res["deltas_ms"]["median_ttft_ms"],
            "ttft_p99_delta_ms": res["deltas_ms"]["p99_ttft_ms"],
            "itl_p90_ratio": res["latency_ratios"]["p90_itl_ms"],
            "itl_p99_ratio": res["latency_ratios"]["p99_itl_ms"],
            "round_spread": res["output_throughput_ratio_spread"],
        }
        rows[arm] = row
        sp = row["round_spread"]
        lines.append(f"| {arm} | {row['throughput_ratio']:.3f}x | {row['ttft_p50_delta_ms']:+.1f} | "
                     f"{row['ttft_p99_delta_ms']:+.1f} | {row['itl_p90_ratio']:.3f}x | {row['itl_p99_ratio']:.3f}x | "
                     f"{sp['min']:.3f}-{sp['max']:.3f} |")
    meta = {"workload": vars(args), "engine": ENGINE, "machine": f"{os.cpu_count()} cores",
            "loadavg_end": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out_dir / "summary.json").write_text(json.dumps({"meta": meta, "arms": rows}, indent=2, default=str))
    md = "\n".join(["# Stack vs raw vLLM (tiny Qwen3, CPU, ABBA rounds)", "", *lines, "",
                    f"Workload: random {args.input_len} in / {args.output_len} out, ignore_eos, "
                    f"{args.num_prompts} prompts x {args.rounds} rounds, max concurrency {args.concurrency}, "
                    f"warm-up {args.warmup}. Both arms ran in one invocation against the same raw vLLM server.", ""])
    (out_dir / "summary.md").write_text(md)
    print(md)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", default="qwen-serve,ray-serve-llm")
    p.add_argument("--num-prompts", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup", type=int, default=32)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "stack_vs_vllm"))
    p.add_argument("--summarize-only", action="store_true", help="rebuild the summary from saved compare.json")
    args = p.parse_args()
    if args.summarize_only:
        out = Path(args.out)
        saved = {arm: json.loads((out / arm / "compare.json").read_text()) for arm in args.arms.split(",")}
        summarize(saved, args, out)
        return 0
    from serve.tiny import build_tiny_model

    model_dir = build_tiny_model("qwen3", Path("~/.cache/qwen-serve/tiny/qwen3-general").expanduser())
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_port = free_port()
    raw = start_raw_vllm(model_dir, raw_port, out_dir / "raw-vllm.log")
    results: dict[str, dict[str, Any]] = {}
    try:
        raw_url = f"http://127.0.0.1:{raw_port}"
        wait_http(raw_url + "/health", 600, "raw vLLM", raw)
        for arm in args.arms.split(","):
            print(f"== arm {arm}", flush=True)
            fn = arm_qwen_serve if arm == "qwen-serve" else arm_ray_serve_llm
            results[arm] = fn(model_dir, raw_url, args, out_dir / arm)
    finally:
        os.killpg(raw.pid, signal.SIGTERM)
        raw.wait(timeout=60)
    summarize(results, args, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
