"""``qwen-serve up``'s wait: progress lines say what Serve says of each engine not ready yet; a failed deploy
ends the wait at once with Serve's reason; a time-out prints the per-engine view and the replica log's tail."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from serve.readiness import EngineState, ServeState, diagnose, progress, wait_ready

NAMES = ["qwen3-moe", "qwen2.5-7b"]
PENDING = ("Deployment 'engine-qwen3-moe' in application 'qwen-serve' has 1 replicas that have taken more than "
           "30s to be scheduled. Resources required for each replica: {'CPU': 5, 'GPU': 1}")


def _state(status: str = "DEPLOYING", message: str = "") -> ServeState:
    return ServeState(status=status, message=message, deployments={
        "engine-qwen3-moe": EngineState("UPDATING", {"PENDING_ALLOCATION": 1}, PENDING),
        "engine-qwen2_5-7b": EngineState("HEALTHY", {"RUNNING": 1}),
    })


def test_progress_names_the_waiting_engine_with_serves_replica_states_and_message() -> None:
    body = {"deployments": {"qwen3-moe": 0, "qwen2.5-7b": 1}}
    line, failed = progress(42.0, body, NAMES, _state())
    assert failed is None
    assert line.startswith("[   42s] engines ready 1/2: qwen2.5-7b | ")
    assert "qwen3-moe: updating, 1 pending_allocation (Deployment 'engine-qwen3-moe'" in line
    assert "qwen2.5-7b:" not in line.split(" | ", 1)[1]  # a ready engine is not repeated
    assert line.endswith("...)")  # the long message is cut in a progress line


def test_progress_without_router_or_serve_state() -> None:
    line, failed = progress(3.0, None, NAMES, None)
    assert (line, failed) == ("[    3s] waiting for the router", None)


def test_deploy_failed_is_a_failure_with_serves_message() -> None:
    _, failed = progress(9.0, None, NAMES, _state("DEPLOY_FAILED", "replica constructor raised\nValueError: x"))
    assert failed == "Serve could not deploy the application: replica constructor raised ValueError: x"


def test_diagnose_prints_the_whole_message_and_the_replica_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "replica_qwen-serve_engine-qwen3-moe_abc123.log"
    log.write_text("".join(f"line {i}\n" for i in range(20)))
    lines = diagnose({"deployments": {"qwen3-moe": 0, "qwen2.5-7b": 1}}, NAMES, _state(), log_lines=3,
                     log_dir=str(tmp_path))
    text = "\n".join(lines)
    assert PENDING in text  # not cut
    assert str(log) in text and "line 19" in text and "line 16" not in text
    assert "qwen2.5-7b" not in text


def test_diagnose_when_nothing_answered() -> None:
    lines = diagnose(None, ["a"], None, log_lines=0)
    assert any("never answered /ready" in ln for ln in lines)
    assert any("status was not available" in ln for ln in lines)


def _fake_json(bodies: list[tuple[int, Any]]) -> Any:
    def get(url: str) -> tuple[int, Any]:
        assert url.endswith("/ready")
        return bodies.pop(0) if len(bodies) > 1 else bodies[0]
    return get


def test_wait_ready_returns_true_when_ready() -> None:
    out = io.StringIO()
    ok = wait_ready("http://r", 5.0, out, NAMES, get_json=_fake_json([(0, None), (200, {})]),
                    get_state=lambda: None, poll_s=0.0)
    assert ok and "ready after" in out.getvalue()


def test_wait_ready_stops_at_once_on_deploy_failed() -> None:
    out = io.StringIO()
    calls = {"n": 0}

    def state() -> ServeState:
        calls["n"] += 1
        return _state("DEPLOY_FAILED", "boom")

    ok = wait_ready("http://r", 60.0, out, NAMES, get_json=_fake_json([(503, {"deployments": {}})]),
                    get_state=state, poll_s=0.0)
    assert not ok and calls["n"] == 1
    assert "Serve could not deploy the application: boom" in out.getvalue()


def test_wait_ready_time_out_prints_the_diagnosis() -> None:
    out = io.StringIO()
    ok = wait_ready("http://r", 0.05, out, NAMES, get_json=_fake_json([(503, {"deployments": {"qwen3-moe": 0}})]),
                    get_state=_state, poll_s=0.01)
    assert not ok
    text = out.getvalue()
    assert "not ready after 0s:" in text and PENDING in text
