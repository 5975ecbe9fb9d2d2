"""Fleet config of autoscaling and scale from zero: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from serve.config import ConfigError, FleetConfig
from tests.autoscale.fleet import autoscale_fleet


def with_autoscaling(**autoscaling: Any) -> dict[str, Any]:
    data = autoscale_fleet()
    data["deployments"][0]["autoscaling"] = {"min_replicas": 1, "max_replicas": 3, **autoscaling}
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        FleetConfig.from_dict(data, check_paths=False)
    return str(exc.value)


def test_defaults_signal_targets_and_delays() -> None:
    auto = FleetConfig.from_dict(with_autoscaling(), check_paths=False).deployments[0].autoscaling
    assert auto is not None
    assert (auto.signal, auto.effective_target, auto.upscale_delay_s, auto.downscale_delay_s) == (
        "ongoing", 16.0, 10.0, 60.0)
    for signal, target in (("waiting", 2.0), ("kv_usage", 0.7)):
        auto = FleetConfig.from_dict(with_autoscaling(signal=signal), check_paths=False).deployments[0].autoscaling
        assert auto is not None and auto.effective_target == target
    auto = FleetConfig.from_dict(with_autoscaling(target_ongoing_requests=5), check_paths=False
                                 ).deployments[0].autoscaling
    assert auto is not None and auto.effective_target == 5.0


@pytest.mark.parametrize(("autoscaling", "message"), [
    ({"initial_replicas": 5}, "deployments[elastic].autoscaling: initial_replicas=5 is outside min_replicas=1..max"),
    ({"signal": "latency"}, "deployments[elastic].autoscaling.signal: Input should be 'ongoing', 'waiting' or"),
    ({"signal": "kv_usage", "target": 1.5}, "deployments[elastic].autoscaling: target=1.5 is a KV-cache fraction"),
    ({"signal": "waiting", "target_ongoing_requests": 4},
     "deployments[elastic].autoscaling: target_ongoing_requests only applies to signal `ongoing`"),
    ({"target": 0}, "deployments[elastic].autoscaling.target: Input should be greater than 0"),
    ({"upscale_delay_s": -1}, "deployments[elastic].autoscaling.upscale_delay_s: Input should be greater than"),
    ({"look_back_period_s": 0.5}, "deployments[elastic].autoscaling.look_back_period_s: Input should be greater"),
    ({"min_replica": 0}, "deployments[elastic].autoscaling.min_replica: Extra inputs are not permitted"),
])
def test_errors_name_the_field(autoscaling: dict[str, Any], message: str) -> None:
    assert message in error_of(with_autoscaling(**autoscaling))


def test_cold_start_bounds_are_validated() -> None:
    data = autoscale_fleet()
    data["router"]["cold_start"]["max_wait_s"] = 0
    assert "router.cold_start.max_wait_s: Input should be greater than 0" in error_of(data)
