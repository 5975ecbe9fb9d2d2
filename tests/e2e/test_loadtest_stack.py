"""`qwen-loadtest run` against the real demo stack: a small task-mix load completes with correct accounting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.fleet import API_KEYS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_task_mix_run_against_stack(stack_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "loadtest.cli", "run", "--base-url", stack_url, "--api-key", API_KEYS[0],
           "--model", "auto", "--dataset", "task-mix", "--task-weights", "code=1,math=1,general=1,reasoning=1",
           "--num-prompts", "12", "--max-concurrency", "4", "--random-input-len", "48",
           "--random-output-len", "8", "--ignore-eos", "--warmup", "0", "--usage-tolerance", "2",
           "--output", str(out), "--no-progress"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["completed"] == 12 and res["failed"] == 0
    assert res["total_output_tokens"] == 12 * 8, "ignore_eos fixes the output length exactly"
    lines = (out / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 12
    routed = {json.loads(line).get("routed_model") for line in lines}
    assert routed <= {"qwen3-general", "qwen-coder", "qwen3-moe"} and routed - {None}
    assert (out / "report.html").is_file()
