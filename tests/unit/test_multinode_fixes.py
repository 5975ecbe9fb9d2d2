"""What the first multi-node runs found, without Ray: Serve's replica log handlers survive ``dictConfig``
(serve/replica_logging.py) and every deployment installs that hook; a rolling ``up`` waits for the new fleet
(serve.stack.update_progress); the multi-node load counts tokens from ``usage``; the test fleet's engines do
not pin cores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.multinode.load import stream_tokens
from serve.cluster import router_actor_options
from serve.config import FleetConfig
from serve.replica_logging import SETUP_HOOK, SETUP_HOOK_ENV, keep_serve_handlers
from serve.stack import update_progress
from tests.multinode.fleet import ENGINE_THREADS, EXTRA, MODEL, multinode_fleet

ROOT = Path(__file__).resolve().parents[2]

# Ray Serve's replica logging (ray.serve._private.logging_utils.configure_component_logger): a MemoryHandler on
# "ray.serve" whose target is the replica's rotating log file; then a library's dictConfig (uvicorn's default
# config); then what Ray Serve's ReplicaActor.is_allocated reads: handler.target.baseFilename.
_SCRIPT = textwrap.dedent("""
    import logging, logging.config, logging.handlers, sys
    from serve.replica_logging import protect_serve_logging
    if sys.argv[2] == "hook":
        protect_serve_logging()
    log_file = sys.argv[1]
    serve_logger = logging.getLogger("ray.serve")
    serve_logger.propagate = False
    serve_logger.setLevel(logging.INFO)
    target = logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=1)
    serve_logger.addHandler(logging.handlers.MemoryHandler(capacity=1, target=target, flushLevel=logging.ERROR))
    from uvicorn.config import LOGGING_CONFIG
    logging.config.dictConfig(LOGGING_CONFIG)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    handler = [h for h in serve_logger.handlers if isinstance(h, logging.handlers.MemoryHandler)][0]
    print(handler.target.baseFilename == log_file, serve_logger.disabled)
    serve_logger.info("after dictConfig")
""")


def _replica_process(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    log_file = tmp_path / f"replica-{mode}.log"
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(log_file), mode], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    return r, log_file


def test_dictconfig_breaks_serve_replica_handler_without_the_hook(tmp_path: Path) -> None:
    """The bug itself: after a library's dictConfig, Serve's is_allocated read fails (controller recovery
    then kills the replica)."""
    r, _ = _replica_process(tmp_path, "plain")
    assert r.returncode != 0 and "AttributeError" in r.stderr, r.stdout + r.stderr


def test_setup_hook_keeps_serve_replica_handler_through_dictconfig(tmp_path: Path) -> None:
    r, log_file = _replica_process(tmp_path, "hook")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]  # target back, logger not disabled
    assert "after dictConfig" in log_file.read_text()  # records still reach the replica's log file


def test_keep_serve_handlers_wraps_once_and_still_configures() -> None:
    calls: list[Any] = []

    def fake(config: Any) -> None:
        calls.append(config)

    wrapped = keep_serve_handlers(fake)
    assert keep_serve_handlers(wrapped) is wrapped
    wrapped({"version": 1})
    assert calls == [{"version": 1}]  # the library's own configuration is applied in full


def _fleet(extra: bool = False) -> FleetConfig:
    return FleetConfig.from_dict(multinode_fleet(8600, extra=extra), check_paths=False)


def test_every_deployment_installs_the_logging_hook() -> None:
    from ray._private import ray_constants

    from serve.deployments import build_llm_config

    f = _fleet()
    llm = build_llm_config(f.deployment(MODEL), f)
    # The env var Ray's default_worker reads (the runtime_env field is a no-op for actors).
    assert SETUP_HOOK_ENV == ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR
    assert llm.runtime_env["env_vars"][SETUP_HOOK_ENV] == SETUP_HOOK
    assert router_actor_options(f)["runtime_env"]["env_vars"][SETUP_HOOK_ENV] == SETUP_HOOK
    module, _, fn = SETUP_HOOK.rpartition(".")
    assert callable(getattr(__import__(module, fromlist=[fn]), fn))  # Ray imports it by this path


def test_multinode_engines_do_not_pin_cores() -> None:
    from serve.deployments import build_llm_config

    f = _fleet()
    env = build_llm_config(f.deployment(MODEL), f).runtime_env["env_vars"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and env["OMP_NUM_THREADS"] == "1"
    assert {k: env[k] for k in ENGINE_THREADS} == ENGINE_THREADS


def _app(status: str, deployments: dict[str, str], message: str = "") -> dict[str, Any]:
    return {"status": status, "message": message, "deployments": deployments}


def _ready(*names: str) -> dict[str, Any]:
    return {"ready": True, "deployments": dict.fromkeys(names, 1)}


OLD = {"router": "HEALTHY", "engine-qwen3-pool": "HEALTHY"}
NEW = {**OLD, "engine-qwen2-extra": "HEALTHY"}


@pytest.mark.parametrize(("app", "code", "ready", "state"), [
    # The old fleet still answers /ready while Serve deploys the new one: not done (the bug was returning here).
    (_app("DEPLOYING", {**OLD, "engine-qwen2-extra": "UPDATING"}), 200, _ready(MODEL), "waiting"),
    # Serve finished, but the live router has not swapped to the new fleet yet.
    (_app("RUNNING", NEW), 200, _ready(MODEL), "waiting"),
    # A removed deployment is still listed by Serve.
    (_app("RUNNING", {**NEW, "engine-old": "HEALTHY"}), 200, _ready(MODEL, EXTRA), "waiting"),
    (None, 200, _ready(MODEL, EXTRA), "waiting"),  # controller not answering
    (_app("RUNNING", NEW), 503, _ready(MODEL, EXTRA), "waiting"),
    (_app("DEPLOY_FAILED", NEW, "engine failed"), 200, _ready(MODEL), "failed"),
    (_app("RUNNING", NEW), 200, _ready(MODEL, EXTRA), "done"),
])
def test_rolling_update_waits_for_the_new_fleet(app: dict[str, Any] | None, code: int, ready: Any,
                                                state: str) -> None:
    got, what = update_progress(app, code, ready, _fleet(extra=True))
    assert got == state, what


def test_rolling_update_removal_is_done_when_both_drop_it() -> None:
    fleet = _fleet()
    assert update_progress(_app("RUNNING", OLD), 200, _ready(MODEL, EXTRA), fleet)[0] == "waiting"
    assert update_progress(_app("RUNNING", NEW), 200, _ready(MODEL), fleet)[0] == "waiting"
    assert update_progress(_app("RUNNING", OLD), 200, _ready(MODEL), fleet)[0] == "done"


def _chunk(content: str | None = None, reasoning: str | None = None, usage: int | None = None) -> Any:
    delta = SimpleNamespace(content=content, model_extra={"reasoning_content": reasoning} if reasoning else {})
    choices = [] if usage is not None else [SimpleNamespace(delta=delta)]
    return SimpleNamespace(choices=choices, usage=SimpleNamespace(completion_tokens=usage) if usage else None)


def test_stream_tokens_counts_usage_for_reasoning_only_answers() -> None:
    reasoning_only = [_chunk(reasoning="hm") for _ in range(5)] + [_chunk(usage=64)]
    assert stream_tokens(reasoning_only) == 64  # counting content chunks reported 0 here
    assert stream_tokens([_chunk(reasoning="a"), _chunk(content="b"), _chunk()]) == 2  # no usage chunk
    assert stream_tokens([_chunk()]) == 0  # an empty answer stays a failure


def test_load_client_builds_with_this_openai_release() -> None:
    from bench.multinode.load import Load

    client = Load("http://127.0.0.1:9", MODEL, read_timeout_s=7.5)._client()  # the first run's threads died here
    assert client.max_retries == 0


def test_engines_skip_the_per_node_download_for_a_local_model(tmp_path: Path) -> None:
    """A replacement replica starts no download task (a worker process of its own) for a model directory."""
    import asyncio

    from ray.llm._internal.common.utils.import_utils import load_class

    from serve.deployments import build_llm_config
    from serve.engine_init import CALLBACK_IMPORT_PATH, LocalModelInit

    f = _fleet()
    llm = build_llm_config(f.deployment(MODEL), f)
    assert llm.callback_config.callback_class == CALLBACK_IMPORT_PATH
    assert load_class(CALLBACK_IMPORT_PATH) is LocalModelInit  # Ray Serve LLM loads it by this path

    def ran_init_node(source: str) -> bool:
        config = SimpleNamespace(model_loading_config=SimpleNamespace(model_source=source))
        callback = LocalModelInit(llm_config=config)
        asyncio.run(callback.run_callback("on_before_node_init"))
        return callback.ctx.run_init_node

    assert ran_init_node(str(tmp_path)) is False
    assert ran_init_node("Qwen/Qwen3-0.6B") is True  # a Hub id keeps Ray's download
    assert ran_init_node(str(tmp_path / "missing")) is True


def test_lost_nodes_and_replicas_are_found_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The head's GCS gets the stack's node health-check settings (own head, RayService head pod, shell wins);
    engine replicas are health-checked every 2 s."""
    from serve import stack
    from serve.cluster import NODE_HEALTH_ENV
    from serve.deployments import ENGINE_HEALTH_CHECK_PERIOD_S, build_llm_config
    from serve.render import render_rayservice

    f = _fleet()
    assert build_llm_config(f.deployment(MODEL), f).deployment_config["health_check_period_s"] == \
        ENGINE_HEALTH_CHECK_PERIOD_S == 2.0
    spec = render_rayservice(f)["spec"]["rayClusterConfig"]
    head_env = {e["name"]: e.get("value") for e in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert {k: head_env[k] for k in NODE_HEALTH_ENV} == NODE_HEALTH_ENV
    for group in spec["workerGroupSpecs"]:  # only the GCS reads them
        assert not {e["name"] for e in group["template"]["spec"]["containers"][0]["env"]} & set(NODE_HEALTH_ENV)

    seen: dict[str, str] = {}

    def fake_run(cmd: list[str], **kw: Any) -> SimpleNamespace:
        seen.update(kw["env"])
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(stack, "ray_running", lambda: False)
    monkeypatch.setattr(stack.subprocess, "run", fake_run)
    monkeypatch.setenv("RAY_health_check_failure_threshold", "9")
    stack.start_ray(4, {}, sys.stderr)
    assert seen["RAY_health_check_period_ms"] == NODE_HEALTH_ENV["RAY_health_check_period_ms"]
    assert seen["RAY_health_check_failure_threshold"] == "9"
