"""The engine-load autoscaling policy with injected metrics, through Ray Serve's own wrapper and config."""

from __future__ import annotations

from typing import Any

import pytest
from ray.serve._private.common import DeploymentID, ReplicaID
from ray.serve.autoscaling_policy import _apply_autoscaling_config
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from serve.autoscale.policy import (
    KV_USAGE,
    ONGOING,
    RUNNING,
    WAITING,
    QwenAutoscalingPolicy,
    desired_replicas,
)
from serve.config import FleetConfig
from serve.deployments import autoscaling_config
from tests.autoscale.fleet import autoscale_fleet

DEP = DeploymentID(name="engine-m", app_name="qwen-serve")


def replicas(n: int) -> list[ReplicaID]:
    return [ReplicaID(unique_id=f"r{i}", deployment_id=DEP) for i in range(n)]


def per_replica(n: int, **values: list[float]) -> dict[str, dict[Any, float]]:
    ids = replicas(n)
    return {name: dict(zip(ids, vals, strict=True)) for name, vals in values.items()}


def context(current: int, metrics: dict[str, dict[Any, float]], *, target_replicas: int | None = None,
            config: AutoscalingConfig | None = None, state: dict[str, Any] | None = None, queued: float = 0.0) -> AutoscalingContext:
    cfg = config or AutoscalingConfig(min_replicas=1, max_replicas=4, upscale_delay_s=0, downscale_delay_s=0)
    return AutoscalingContext(
        deployment_id=DEP, deployment_name=DEP.name, app_name=DEP.app_name, current_num_replicas=current,
        target_num_replicas=current if target_replicas is None else target_replicas,
        running_replicas=replicas(current), total_num_requests=queued, total_queued_requests=queued,
        aggregated_metrics=metrics, raw_metrics={}, capacity_adjusted_min_replicas=cfg.min_replicas,
        capacity_adjusted_max_replicas=cfg.max_replicas, policy_state=dict(state or {}), last_scale_up_time=None,
        last_scale_down_time=None, current_time=None, config=cfg)


@pytest.mark.parametrize(("ongoing", "expected"), [([0.0], 0.0), ([4.0], 1.0), ([9.0], 2.25), ([8.0, 8.0], 4.0),
                                                    ([1.0, 0.0], 0.25)])
def test_ongoing_is_total_in_flight_over_target(ongoing: list[float], expected: float) -> None:
    got, value = desired_replicas("ongoing", 4.0, len(ongoing), per_replica(len(ongoing), **{ONGOING: ongoing}))
    assert got == pytest.approx(expected)
    assert value == pytest.approx(sum(ongoing) / len(ongoing))


def test_kv_usage_adds_up_across_replicas() -> None:
    got, value = desired_replicas("kv_usage", 0.5, 2, per_replica(2, **{ONGOING: [3, 3], KV_USAGE: [0.9, 0.6]}))
    assert got == pytest.approx(3.0) and value == pytest.approx(0.75)
    got, _ = desired_replicas("kv_usage", 0.5, 2, per_replica(2, **{ONGOING: [1, 0], KV_USAGE: [0.2, 0.0]}))
    assert got == pytest.approx(0.4)


def test_waiting_scales_up_on_the_observed_saturation_capacity() -> None:
    # 2 replicas each running 10 with 10 queued: each serves ~10 at saturation, 40 requests need 4.
    m = per_replica(2, **{ONGOING: [20, 20], RUNNING: [10, 10], WAITING: [10, 10]})
    assert desired_replicas("waiting", 2.0, 2, m, replica_capacity=32)[0] == 4


def test_waiting_below_target_never_scales_up_and_scales_down_to_what_in_flight_needs() -> None:
    busy = per_replica(2, **{ONGOING: [30, 30], RUNNING: [30, 30], WAITING: [1, 1]})
    assert desired_replicas("waiting", 2.0, 2, busy, replica_capacity=32)[0] == 2
    light = per_replica(2, **{ONGOING: [5, 3], RUNNING: [5, 3], WAITING: [0, 0]})
    assert desired_replicas("waiting", 2.0, 2, light, replica_capacity=32)[0] == 1
    idle = per_replica(2, **{ONGOING: [0, 0], RUNNING: [0, 0], WAITING: [0, 0]})
    assert desired_replicas("waiting", 2.0, 2, idle, replica_capacity=32)[0] == 0


def test_no_report_yet_holds_and_zero_replicas_keep_the_target() -> None:
    assert desired_replicas("ongoing", 4.0, 2, {}) == (2.0, None)
    policy = QwenAutoscalingPolicy("m", "ongoing", 4.0, publish=False)
    assert policy(context(0, {}, target_replicas=1))[0] == 1  # a replica is starting: do not cancel it


def test_unknown_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown autoscaling signal"):
        QwenAutoscalingPolicy("m", "latency")


class _Clock:
    """Stands in for the ``time`` module of Serve's policy wrapper (its delays read ``time.time()``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


def test_serve_applies_bounds_delays_and_the_cold_start_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.serve.autoscaling_policy as serve_policy

    clock = _Clock()
    monkeypatch.setattr(serve_policy, "time", clock)
    cfg = AutoscalingConfig(min_replicas=0, max_replicas=2, upscale_delay_s=5, downscale_delay_s=30,
                            downscale_to_zero_delay_s=300)
    policy = _apply_autoscaling_config(QwenAutoscalingPolicy("m", "ongoing", 4.0, publish=False))
    load = per_replica(1, **{ONGOING: [16.0]})
    # Upscale waits upscale_delay_s of consistent demand.
    n, state = policy(context(1, load, config=cfg))
    assert n == 1
    clock.now += 6
    n, state = policy(context(1, load, config=cfg, state=state))
    assert n == 4  # Serve clamps to max_replicas afterwards (apply_bounds)
    # Downscale 2 -> 1 after downscale_delay_s, not before.
    light = per_replica(2, **{ONGOING: [1.0, 0.0]})
    n, state = policy(context(2, light, config=cfg))
    assert n == 2
    clock.now += 20
    n, state = policy(context(2, light, config=cfg, state=state))
    assert n == 2
    clock.now += 11
    n, state = policy(context(2, light, config=cfg, state=state))
    assert n == 1
    # A request queued on a handle (the router's wake call) scales 0 -> 1 at once.
    n, _ = policy(context(0, {}, config=cfg, target_replicas=0, queued=1.0))
    assert n == 1
    n, _ = policy(context(0, {}, config=cfg, target_replicas=0, queued=0.0))
    assert n == 0


def test_fleet_autoscaling_is_a_valid_serve_config_with_the_policy() -> None:
    fleet = FleetConfig.from_dict(autoscale_fleet(), check_paths=False)
    cfg = AutoscalingConfig(**autoscaling_config(fleet.deployments[0]))
    assert (cfg.min_replicas, cfg.max_replicas, cfg.initial_replicas) == (0, 2, 0)
    assert cfg.upscale_delay_s == 2.0 and cfg.downscale_delay_s == 15.0 and cfg.downscale_to_zero_delay_s == 600
    assert cfg.policy.policy_function == "serve.autoscale.policy:QwenAutoscalingPolicy"
    assert cfg.policy.policy_kwargs == {"deployment": "elastic", "signal": "ongoing", "target": 4.0,
                                        "replica_capacity": 32}
    policy = cfg.policy.get_policy()(**cfg.policy.policy_kwargs)  # what Serve's controller instantiates
    assert policy.signal == "ongoing" and policy.target == 4.0


def test_fixed_replicas_are_min_equals_max() -> None:
    data = autoscale_fleet()
    del data["deployments"][0]["autoscaling"]
    data["deployments"][0]["replicas"] = 2
    fleet = FleetConfig.from_dict(data, check_paths=False)
    assert autoscaling_config(fleet.deployments[0]) == {"min_replicas": 2, "max_replicas": 2}
