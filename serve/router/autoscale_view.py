"""The router's view of autoscaling: replicas, desired replicas and the scaling signal per deployment.

Ray Serve's controller runs ``serve.autoscale.policy`` for every autoscaled engine deployment; the policy
publishes what it saw and decided in Ray's internal KV. :class:`AutoscaleView` reads those records every
couple of seconds and shows them, next to the replicas this router can reach, in ``/v1/status``
(``autoscaling``) and in ``/metrics``:

- ``qwen_autoscale_replicas{model}``: engine replicas registered with this router (draining ones excluded);
- ``qwen_autoscale_desired_replicas{model}``: what the signal asks for, within the bounds, before Serve's
  delays; ``qwen_autoscale_target_replicas{model}``: Serve's current target;
- ``qwen_autoscale_signal{model,signal}`` and ``qwen_autoscale_signal_target{model,signal}``: the signal's
  per-replica value (averaged over the look-back window) and its target;
- ``qwen_autoscale_min_replicas`` / ``qwen_autoscale_max_replicas``: the bounds.

Fixed-size deployments show their replica count with desired = target = the fixed count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

Reader = Callable[[], Mapping[str, Mapping[str, Any]]]
#: Seconds between reads of the policy's records.
REFRESH_S = 2.0
#: A policy record older than this (seconds) is shown but not trusted as current.
STALE_S = 30.0


def ray_kv_reader() -> Mapping[str, Mapping[str, Any]]:
    """Read the policy's records from Ray's internal KV (in a router replica)."""
    from serve.autoscale.policy import read_statuses

    return read_statuses()


class AutoscaleView:
    """Per-deployment autoscaling figures for status and metrics.

    Args:
        fleet: The fleet config.
        registry: The router's endpoint registry (live replica counts).
        metrics: The router's metrics (the view registers a collector on ``metrics.registry``); may be None.
        reader: Returns ``{deployment: policy record}``; None shows configuration and replica counts only.
    """

    def __init__(self, fleet: Any, registry: Any, metrics: Any = None, reader: Reader | None = None) -> None:
        self.registry = registry
        self.reader = reader
        self.specs = {d.name: d for d in fleet.deployments}
        self.records: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        if metrics is not None:
            metrics.registry.register(_AutoscaleCollector(self))

    async def start(self) -> None:
        """Read the records now, then every :data:`REFRESH_S` seconds."""
        if self.reader is None:
            return
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def refresh(self) -> None:
        """Read the policy's records once (keeps the last ones on error)."""
        if self.reader is None:
            return
        try:
            got = await asyncio.get_running_loop().run_in_executor(None, self.reader)
            self.records = {k: dict(v) for k, v in got.items() if k in self.specs}
        except Exception:  # noqa: BLE001 - keep the last known records
            logger.debug("autoscaling status read failed", exc_info=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.refresh()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{deployment: {replicas, desired, target_replicas, min, max, signal, value, target, ...}}``."""
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        for name, spec in self.specs.items():
            live = len(self.registry.load(name).healthy_endpoints)
            auto = spec.autoscaling
            row: dict[str, Any] = {"replicas": live, "autoscaled": auto is not None}
            if auto is None:
                row.update(desired=spec.replicas, target_replicas=spec.replicas, min_replicas=spec.replicas,
                           max_replicas=spec.replicas, signal=None, value=None, target=None)
            else:
                rec = self.records.get(name, {})
                fresh = bool(rec) and now - float(rec.get("updated") or 0.0) <= STALE_S
                row.update(desired=rec.get("desired") if fresh else None,
                           target_replicas=rec.get("target_replicas") if fresh else None,
                           min_replicas=auto.min_replicas, max_replicas=auto.max_replicas, signal=auto.signal,
                           value=rec.get("value") if fresh else None, target=auto.effective_target,
                           upscale_delay_s=auto.upscale_delay_s, downscale_delay_s=auto.downscale_delay_s)
            out[name] = row
        return out


class _AutoscaleCollector(Collector):
    """Scrape-time gauges from :meth:`AutoscaleView.snapshot`."""

    def __init__(self, view: AutoscaleView) -> None:
        self._view = view

    def describe(self) -> Iterator[Metric]:
        """No static description."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Yield the autoscaling gauges."""
        m = ["model"]
        fam = {
            "replicas": GaugeMetricFamily("qwen_autoscale_replicas", "Engine replicas registered with the router",
                                          labels=m),
            "desired": GaugeMetricFamily("qwen_autoscale_desired_replicas",
                                         "Replicas the scaling signal asks for (within bounds, before delays)",
                                         labels=m),
            "target_replicas": GaugeMetricFamily("qwen_autoscale_target_replicas", "Ray Serve's target replicas",
                                                 labels=m),
            "min_replicas": GaugeMetricFamily("qwen_autoscale_min_replicas", "Lower replica bound", labels=m),
            "max_replicas": GaugeMetricFamily("qwen_autoscale_max_replicas", "Upper replica bound", labels=m),
            "value": GaugeMetricFamily("qwen_autoscale_signal", "Scaling signal per replica (look-back average)",
                                       labels=["model", "signal"]),
            "target": GaugeMetricFamily("qwen_autoscale_signal_target", "Per-replica target of the scaling signal",
                                        labels=["model", "signal"]),
        }
        for name, row in self._view.snapshot().items():
            for key in ("replicas", "desired", "target_replicas", "min_replicas", "max_replicas"):
                if row.get(key) is not None:
                    fam[key].add_metric([name], float(row[key]))
            if row.get("signal"):
                for key in ("value", "target"):
                    if row.get(key) is not None:
                        fam[key].add_metric([name, row["signal"]], float(row[key]))
        yield from fam.values()
