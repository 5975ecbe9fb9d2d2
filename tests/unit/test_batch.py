"""``qwen-serve batch`` against the FAKE engine (loadtest.fake_server) and scripted test servers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serve.batch import (
    BatchInputError,
    BatchSettings,
    execute_batch,
    finished_ids,
    load_requests,
    retry_delay,
    run_batch,
)
from tests.unit.conftest import AppServer, FakeEngineServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "fake-qwen"


def chat_line(cid: str, text: str = "hello", **body: Any) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 4, **body}}


def completion_line(cid: str) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": "/v1/completions",
            "body": {"model": MODEL, "prompt": "once upon a time", "max_tokens": 4}}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEngineServer]:
    """A fast FAKE engine serving ``fake-qwen``."""
    server = FakeEngineServer(MODEL, ttft_s=0.002, tokens_per_s=2000.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[AppServer, dict[str, Any]]]:
    """A server whose answer depends on the prompt: ``status:CODE:N`` answers CODE N times, then 200."""
    state: dict[str, Any] = {"calls": Counter(), "bodies": {}, "headers": {}}
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        text = body["messages"][0]["content"]
        state["calls"][text] += 1
        state["bodies"][text] = body
        state["headers"][text] = dict(request.headers)
        if text.startswith("status:"):
            _, code, times = text.split(":")
            if state["calls"][text] <= int(times):
                headers = {"retry-after": "0"} if code == "429" else {}
                return JSONResponse({"error": {"message": "nope", "type": "x", "param": None, "code": int(code)}},
                                    status_code=int(code), headers=headers)
        return JSONResponse({"id": "c1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]},
            headers={"x-request-id": "server-rid"})

    server = AppServer(app)
    yield server, state
    server.stop()


FAST = BatchSettings(concurrency=4, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05, progress=False)


# ---------------------------------------------------------------------------------------- validation


def test_load_requests_valid_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(chat_line("a")) + "\n\n" + json.dumps(completion_line("b")) + "\n")
    reqs = load_requests(p)
    assert [r.custom_id for r in reqs] == ["a", "b"]
    assert reqs[1].url == "/v1/completions"


def test_load_requests_lists_every_problem(tmp_path: Path) -> None:
    bad_url = {**chat_line("c"), "url": "/v1/embeddings"}
    bad_method = {**chat_line("d"), "method": "GET"}
    rows = [json.dumps(chat_line("a")), "{not json", json.dumps(chat_line("a")), json.dumps(bad_url),
            json.dumps(bad_method), json.dumps(chat_line("e", stream=True)),
            json.dumps({"custom_id": "f", "method": "POST", "url": "/v1/completions", "body": {}})]
    p = tmp_path / "in.jsonl"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(BatchInputError) as ei:
        load_requests(p)
    msg = str(ei.value)
    assert "line 2:" in msg
    assert "line 3: duplicate custom_id 'a' (first on line 1)" in msg
    assert "line 4: url" in msg and "line 5: method" in msg
    assert "line 6: body.stream" in msg and "line 7: body.prompt" in msg
    assert "nothing was sent" in msg


def test_invalid_input_sends_nothing_and_exits_2(tmp_path: Path, scripted: tuple[AppServer, dict[str, Any]]
                                                 ) -> None:
    server, state = scripted
    p = write_jsonl(tmp_path / "in.jsonl", [chat_line("x", "never-sent"), chat_line("x", "never-sent")])
    out = tmp_path / "out.jsonl"
    assert run_batch(p, out, base_url=server.url, progress=False) == 2
    assert state["calls"]["never-sent"] == 0
    assert not out.exists()


# ------------------------------------------------------------------------------------------ output scan


def test_finished_ids_cuts_torn_tail(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = json.dumps({"custom_id": "a", "response": None, "error": None}) + "\n"
    out.write_text(good + '{"custom_id": "b", "resp')
    assert finished_ids(out, ["a", "b"]) == {"a"}
    assert out.read_text() == good


def test_finished_ids_rejects_foreign_duplicate_and_corrupt(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"custom_id": "zzz"}])
    with pytest.raises(BatchInputError, match="not in the input"):
        finished_ids(out, ["a"])
    write_jsonl(out, [{"custom_id": "a"}, {"custom_id": "a"}])
    with pytest.raises(BatchInputError, match="already on an earlier line"):
        finished_ids(out, ["a"])
    out.write_text("garbage\n" + json.dumps({"custom_id": "a"}) + "\n")
    with pytest.raises(BatchInputError, match="line 1 is not a batch output line"):
        finished_ids(out, ["a"])


def test_finished_ids_missing_file(tmp_path: Path) -> None:
    assert finished_ids(tmp_path / "nope.jsonl") == set()


# ------------------------------------------------------------------------------------------- backoff


def test_retry_delay_honours_retry_after() -> None:
    s = BatchSettings(retry_after_max_s=10.0)
    assert retry_delay(1, "3", s) == 3.0
    assert retry_delay(1, "999", s) == 10.0
    date = formatdate(time.time() + 5, usegmt=True)
    assert 3.0 < retry_delay(1, date, s) <= 5.0


def test_retry_delay_exponential_with_cap() -> None:
    s = BatchSettings(backoff_base_s=1.0, backoff_max_s=4.0)
    rng = random.Random(0)
    assert all(0 <= retry_delay(1, None, s, rng) <= 1.0 for _ in range(50))
    assert max(retry_delay(3, "garbage", s, rng) for _ in range(200)) > 2.0
    assert all(retry_delay(10, None, s, rng) <= 4.0 for _ in range(50))


# --------------------------------------------------------------------------------- against the FAKE


def test_batch_through_fake_engine(tmp_path: Path, fake: FakeEngineServer) -> None:
    rows = [chat_line(f"c{i}") if i % 3 else completion_line(f"p{i}") for i in range(30)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    summary = execute_batch(inp, out, base_url=fake.url + "/v1", settings=FAST)
    assert (summary.total, summary.skipped, summary.succeeded, summary.failed) == (30, 0, 30, 0)
    recs = read_jsonl(out)
    assert sorted(r["custom_id"] for r in recs) == sorted(r["custom_id"] for r in rows)
    for r in recs:
        assert r["id"].startswith("batch_req_") and r["error"] is None
        assert r["response"]["status_code"] == 200 and r["response"]["request_id"]
        body = r["response"]["body"]
        assert body["object"] == ("text_completion" if r["custom_id"].startswith("p") else "chat.completion")
        assert body["usage"]["completion_tokens"] == 4


def test_resume_skips_done_and_repairs_torn_line(tmp_path: Path, fake: FakeEngineServer) -> None:
    rows = [chat_line(f"r{i}") for i in range(20)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    execute_batch(write_jsonl(tmp_path / "first.jsonl", rows[:8]), out, base_url=fake.url, settings=FAST)
    before = out.read_text()
    with out.open("a") as f:
        f.write('{"id": "batch_req_torn", "custom_id": "r9", "respo')
    summary = execute_batch(inp, out, base_url=fake.url, settings=FAST)
    assert (summary.skipped, summary.succeeded) == (8, 12)
    assert out.read_text().startswith(before)  # finished lines untouched, not re-sent
    counts = Counter(r["custom_id"] for r in read_jsonl(out))
    assert set(counts) == {r["custom_id"] for r in rows} and set(counts.values()) == {1}
    again = execute_batch(inp, out, base_url=fake.url, settings=FAST)
    assert (again.skipped, again.succeeded) == (20, 0)


def test_output_of_another_batch_is_refused(tmp_path: Path, fake: FakeEngineServer) -> None:
    out = write_jsonl(tmp_path / "out.jsonl", [{"custom_id": "other", "response": None, "error": None}])
    inp = write_jsonl(tmp_path / "in.jsonl", [chat_line("mine")])
    assert run_batch(inp, out, base_url=fake.url, progress=False) == 2
    assert len(read_jsonl(out)) == 1


# ------------------------------------------------------------------------------- retries and errors


def test_retries_429_and_503_then_succeeds(tmp_path: Path, scripted: tuple[AppServer, dict[str, Any]]) -> None:
    server, state = scripted
    inp = write_jsonl(tmp_path / "in.jsonl", [chat_line("a", "status:429:2"), chat_line("b", "status:503:1")])
    out = tmp_path / "out.jsonl"
    summary = execute_batch(inp, out, base_url=server.url, settings=FAST)
    assert summary.succeeded == 2 and summary.retries == 3
    assert state["calls"]["status:429:2"] == 3 and state["calls"]["status:503:1"] == 2
    recs = {r["custom_id"]: r for r in read_jsonl(out)}
    assert recs["a"]["response"]["status_code"] == 200
    assert recs["a"]["response"]["request_id"] == "server-rid"


def test_4xx_is_not_retried_and_written_with_its_error(tmp_path: Path,
                                                       scripted: tuple[AppServer, dict[str, Any]]) -> None:
    server, state = scripted
    inp = write_jsonl(tmp_path / "in.jsonl", [chat_line("bad", "status:400:99"), chat_line("ok", "fine-4xx")])
    out = tmp_path / "out.jsonl"
    assert run_batch(inp, out, base_url=server.url, progress=False) == 1
    assert state["calls"]["status:400:99"] == 1
    recs = {r["custom_id"]: r for r in read_jsonl(out)}
    assert recs["bad"]["response"]["status_code"] == 400
    assert recs["bad"]["response"]["body"]["error"]["message"] == "nope"
    assert recs["ok"]["response"]["status_code"] == 200


def test_retries_exhausted_and_errors_file(tmp_path: Path, scripted: tuple[AppServer, dict[str, Any]]) -> None:
    server, state = scripted
    inp = write_jsonl(tmp_path / "in.jsonl", [chat_line("down", "status:503:99"), chat_line("up", "fine-err")])
    out, errs = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    s = FAST.model_copy(update={"max_retries": 2})
    summary = execute_batch(inp, out, base_url=server.url, settings=s, errors_path=errs)
    assert (summary.succeeded, summary.failed) == (1, 1)
    assert state["calls"]["status:503:99"] == 3
    assert [r["custom_id"] for r in read_jsonl(out)] == ["up"]
    assert [r["response"]["status_code"] for r in read_jsonl(errs)] == [503]
    rerun = execute_batch(inp, out, base_url=server.url, settings=s, errors_path=errs)
    assert rerun.skipped == 2 and state["calls"]["status:503:99"] == 3


def test_connection_error_is_written_as_error(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "in.jsonl", [chat_line("a")])
    out = tmp_path / "out.jsonl"
    s = FAST.model_copy(update={"max_retries": 1})
    summary = execute_batch(inp, out, base_url=f"http://127.0.0.1:{free_port()}", settings=s)
    assert summary.failed == 1 and summary.retries == 1
    (rec,) = read_jsonl(out)
    assert rec["response"] is None and rec["error"]["code"] == "connection_error"


def test_model_defaults_to_auto_and_api_key_sent(tmp_path: Path,
                                                 scripted: tuple[AppServer, dict[str, Any]]) -> None:
    server, state = scripted
    row = chat_line("m", "no-model-here")
    del row["body"]["model"]
    inp = write_jsonl(tmp_path / "in.jsonl", [row])
    execute_batch(inp, tmp_path / "out.jsonl", base_url=server.url, api_key="sekret", settings=FAST)
    assert state["bodies"]["no-model-here"]["model"] == "auto"
    assert state["headers"]["no-model-here"]["authorization"] == "Bearer sekret"


# ------------------------------------------------------------------------------------------- crash


@pytest.fixture
def slow_fake() -> Iterator[FakeEngineServer]:
    """A FAKE engine slow enough (~0.3 s a request) to kill a batch midway."""
    server = FakeEngineServer(MODEL, ttft_s=0.05, tokens_per_s=100.0)
    yield server
    server.stop()


def _cli_batch(inp: Path, out: Path, url: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "serve.cli", "batch", str(inp), str(out), "--url", url, "--concurrency", "4"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "QWEN_SERVE_API_KEY": ""})


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_midway_then_rerun_each_id_exactly_once(tmp_path: Path, slow_fake: FakeEngineServer) -> None:
    total = 60
    rows = [chat_line(f"k{i}", max_tokens=15) for i in range(total)]
    inp = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = _cli_batch(inp, out, slow_fake.url)
    deadline = time.monotonic() + 60
    while _lines(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    at_kill = _lines(out)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < at_kill < total, "the batch must be killed midway"
    rerun = _cli_batch(inp, out, slow_fake.url)
    assert rerun.wait(timeout=120) == 0
    counts = Counter(r["custom_id"] for r in read_jsonl(out))
    assert set(counts) == {r["custom_id"] for r in rows}
    assert set(counts.values()) == {1}
    assert all(r["response"]["status_code"] == 200 for r in read_jsonl(out))
