"""``qwen-serve batch`` through the real demo stack (random-weight models: counts and statuses, never text)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from serve.batch import run_batch
from tests.e2e.fleet import API_KEYS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("auto", "qwen3-general", "qwen-coder", "qwen3-moe")
PROMPTS = ("Write a python function that reverses a list", "Solve 2x + 3 = 7", "Tell me about the sea")


def _rows() -> list[dict[str, Any]]:
    """12 lines: every model (auto and explicit) x chat/completions, max_tokens 4."""
    rows = []
    for i in range(12):
        model, prompt = MODELS[i % len(MODELS)], PROMPTS[i % len(PROMPTS)]
        if i % 3 == 2:
            row = {"url": "/v1/completions", "body": {"model": model, "prompt": prompt, "max_tokens": 4}}
        else:
            row = {"url": "/v1/chat/completions",
                   "body": {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4}}
        rows.append({"custom_id": f"e2e-{i}", "method": "POST", **row})
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_batch_cli_through_stack_then_resume_is_noop(stack_url: str, tmp_path: Path) -> None:
    rows = _rows()
    inp, out = _write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "serve.cli", "batch", str(inp), str(out), "--url", stack_url,
           "--concurrency", "4"]
    env = {**os.environ, "QWEN_SERVE_API_KEY": API_KEYS[0]}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    recs = _read(out)
    assert Counter(r["custom_id"] for r in recs) == Counter(r["custom_id"] for r in rows)
    sent = {r["custom_id"]: r for r in rows}
    for rec in recs:
        resp = rec["response"]
        assert rec["error"] is None and resp["status_code"] == 200 and resp["request_id"]
        body, req = resp["body"], sent[rec["custom_id"]]
        assert body["object"] == ("chat.completion" if req["url"] == "/v1/chat/completions" else "text_completion")
        assert body["usage"]["completion_tokens"] <= 4
        if req["body"]["model"] != "auto":
            assert body["model"] == req["body"]["model"]
    before = out.read_text()
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert out.read_text() == before


def test_batch_without_key_writes_401_without_retrying(stack_url: str, tmp_path: Path) -> None:
    inp = _write(tmp_path / "in.jsonl", _rows()[:2])
    out, errs = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    assert run_batch(inp, out, base_url=stack_url, api_key=None, errors=errs, progress=False) == 1
    assert _read(out) == []
    assert sorted(r["response"]["status_code"] for r in _read(errs)) == [401, 401]


def test_batch_unknown_model_is_a_final_404(stack_url: str, tmp_path: Path) -> None:
    row = {"custom_id": "nope", "method": "POST", "url": "/v1/chat/completions",
           "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}}
    inp, out = _write(tmp_path / "in.jsonl", [row]), tmp_path / "out.jsonl"
    assert run_batch(inp, out, base_url=stack_url, api_key=API_KEYS[0], progress=False) == 1
    (rec,) = _read(out)
    assert rec["response"]["status_code"] == 404
    assert "error" in rec["response"]["body"]
