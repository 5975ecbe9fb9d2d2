"""The Ray Serve autoscaling policy of the engine deployments, on the load the replicas report.

Requests reach engine replicas over their private HTTP ports, not through Serve handles, so Serve's default
policy (ongoing requests counted on handles) sees no load. Each engine replica instead reports its own figures
through Serve's custom-metrics hook (``record_autoscaling_stats``, see ``serve.engine_server``), under the
names in :data:`METRICS`:

- ``qwen_ongoing``: requests in flight on the replica's HTTP app, i.e. what every router replica has sent it
  and not yet seen answered (counted by the engine itself, so it is exact with several routers);
- ``qwen_running``, ``qwen_waiting``, ``qwen_kv_usage``: its vLLM engine's running batch, queue and KV-cache use.

Serve averages each over ``look_back_period_s`` and calls :class:`QwenAutoscalingPolicy` every control-loop
tick with them (``AutoscalingContext.aggregated_metrics``). The policy returns the replica count the chosen
signal asks for; Serve then applies the bounds, ``upscale_delay_s`` / ``downscale_delay_s`` /
``downscale_to_zero_delay_s`` and its cold-start fast path (a deployment at zero replicas with requests queued
on a handle goes to one replica at once, which is how the router wakes a deployment).

Signals (per replica, ``target`` from the fleet config):

- ``ongoing``: ``desired = ceil(total in-flight / target)`` (Serve's own rule, on the right count).
- ``kv_usage``: ``desired = ceil(sum of KV use / target)``: KV use adds up across replicas like load does.
- ``waiting``: a queue is not additive (an empty queue does not mean an idle replica), so: while the average
  queue is above ``target``, the replicas are saturated and each serves about ``running / n`` requests, hence
  ``desired = ceil((running + waiting) / (running / n))``; otherwise no upscale, and downscale only to what the
  in-flight requests need at ``replica_capacity`` (``max_ongoing_requests``) each.

The policy also publishes what it decided (:func:`publish_status`) in Ray's internal KV, at most once a second
per deployment, so routers can show replicas, desired replicas and the signal in ``/v1/status`` and metrics.
Imports: the standard library only (Ray lazily), since Serve pickles this module into its controller.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

#: Custom metric names reported by engine replicas.
ONGOING, RUNNING, WAITING, KV_USAGE = "qwen_ongoing", "qwen_running", "qwen_waiting", "qwen_kv_usage"
METRICS = (ONGOING, RUNNING, WAITING, KV_USAGE)
SIGNALS = ("ongoing", "waiting", "kv_usage")
#: Internal-KV prefix and namespace of the per-deployment autoscaling status.
STATUS_PREFIX = "qwen-serve/autoscale/"
KV_NAMESPACE = "qwen-serve"
#: The policy publishes its status at most this often (seconds) unless the decision changed.
PUBLISH_EVERY_S = 1.0


def _total(values: Mapping[Any, float] | None) -> float:
    return float(sum(values.values())) if values else 0.0


def desired_replicas(signal: str, target: float, current: int, metrics: Mapping[str, Mapping[Any, float]],
                     replica_capacity: float = 0.0) -> tuple[float, float | None]:
    """The replica count a signal asks for (before Serve's bounds and delays).

    Args:
        signal: ``ongoing``, ``waiting`` or ``kv_usage``.
        target: Per-replica target of the signal.
        current: Running replicas.
        metrics: ``{metric name: {replica: value averaged over the look-back window}}``.
        replica_capacity: In-flight requests one replica admits (``waiting`` downscale bound).

    Returns:
        ``(desired replicas, signal value per replica or None when no replica reported yet)``.
    """
    if current <= 0:
        return 0.0, None
    ongoing = metrics.get(ONGOING) or {}
    if not ongoing and not metrics.get(RUNNING) and not metrics.get(KV_USAGE):
        return float(current), None  # nothing reported yet (replicas just started): hold
    if signal == "kv_usage":
        kv = _total(metrics.get(KV_USAGE))
        return kv / target, kv / current
    if signal == "waiting":
        running, waiting = _total(metrics.get(RUNNING)), _total(metrics.get(WAITING))
        per_replica = waiting / current
        if per_replica > target and running > 0:
            return math.ceil((running + waiting) / (running / current)), per_replica
        inflight = _total(ongoing) if ongoing else running + waiting
        need = math.ceil(inflight / replica_capacity) if replica_capacity > 0 else current
        return float(min(current, max(need, 1 if inflight > 0 else 0))), per_replica
    total = _total(ongoing) if ongoing else _total(metrics.get(RUNNING)) + _total(metrics.get(WAITING))
    return total / target, total / current


class QwenAutoscalingPolicy:
    """Ray Serve custom autoscaling policy (``AutoscalingPolicy(policy_function=...:QwenAutoscalingPolicy)``).

    Serve instantiates it once per deployment with ``policy_kwargs`` and calls it every control-loop tick.

    Args:
        deployment: The fleet deployment name (for the status record).
        signal: ``ongoing``, ``waiting`` or ``kv_usage``.
        target: Per-replica target of the signal.
        replica_capacity: In-flight requests one replica admits.
        publish: Publish the status record in Ray's internal KV.
    """

    def __init__(self, deployment: str, signal: str = "ongoing", target: float = 16.0,
                 replica_capacity: float = 0.0, publish: bool = True) -> None:
        if signal not in SIGNALS:
            raise ValueError(f"unknown autoscaling signal {signal!r}; signals: {', '.join(SIGNALS)}")
        self.deployment = deployment
        self.signal = signal
        self.target = float(target)
        self.replica_capacity = float(replica_capacity)
        self.publish = publish
        self._last: tuple[int, int, int] | None = None
        self._last_publish = 0.0

    def __call__(self, ctx: Any) -> tuple[float, dict[str, Any]]:
        """Decide for one tick: ``(desired replicas, policy state)``."""
        current = int(ctx.current_num_replicas)
        if current == 0:
            # Nothing runs: keep the target (a replica may be starting). Serve's cold-start fast path scales
            # from zero when requests queue on a handle (the router's wake call).
            desired, value = float(ctx.target_num_replicas), None
        else:
            desired, value = desired_replicas(self.signal, self.target, current, ctx.aggregated_metrics or {},
                                              self.replica_capacity)
        if self.publish:
            bounded = min(max(math.ceil(desired), ctx.capacity_adjusted_min_replicas),
                          ctx.capacity_adjusted_max_replicas)
            self._maybe_publish(current, bounded, int(ctx.target_num_replicas), value, ctx)
        return desired, dict(ctx.policy_state or {})

    def _maybe_publish(self, current: int, desired: int, target_replicas: int, value: float | None,
                       ctx: Any) -> None:
        now = time.time()
        key = (current, desired, target_replicas)
        if key == self._last and now - self._last_publish < PUBLISH_EVERY_S:
            return
        self._last, self._last_publish = key, now
        status = {"deployment": self.deployment, "signal": self.signal, "target": self.target,
                  "value": value, "replicas": current, "desired": desired, "target_replicas": target_replicas,
                  "min_replicas": int(ctx.capacity_adjusted_min_replicas),
                  "max_replicas": int(ctx.capacity_adjusted_max_replicas), "updated": now}
        try:
            publish_status(self.deployment, status)
        except Exception:  # noqa: BLE001 - status is informational; never break the control loop
            logger.debug("could not publish the autoscaling status of %s", self.deployment)


def publish_status(deployment: str, status: Mapping[str, Any]) -> None:
    """Write a deployment's autoscaling status in Ray's internal KV."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(f"{STATUS_PREFIX}{deployment}".encode(), json.dumps(status).encode(),
                                 namespace=KV_NAMESPACE)


def read_statuses() -> dict[str, dict[str, Any]]:
    """Every deployment's latest autoscaling status from Ray's internal KV (``{deployment: status}``)."""
    from ray.experimental import internal_kv

    out: dict[str, dict[str, Any]] = {}
    for key in internal_kv._internal_kv_list(STATUS_PREFIX, namespace=KV_NAMESPACE):
        raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
        try:
            status = json.loads(raw) if raw else None
        except ValueError:
            status = None
        if isinstance(status, dict) and isinstance(status.get("deployment"), str):
            out[status["deployment"]] = status
    return out
