"""Routing decisions computed from a fleet config alone (``qwen-serve route --local``).

Every deployment is assumed healthy and idle, so the answer is the policy's first choice; the running stack's
``/v1/route`` also accounts for load and health.
"""

from __future__ import annotations

from typing import Any

from serve.router.policy import RoutingPolicy
from serve.router.protocol import RouterError, error_body
from serve.router.tokens import TokenCounter
from serve.router.upstream import Endpoint, StaticRegistry


def route_offline(fleet: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Return the ``/v1/route`` answer for ``body`` under ``fleet``, assuming an idle, healthy fleet."""
    from serve.router.classify import Classifier
    from serve.router.metrics import RouterMetrics
    from serve.router.service import RouterService

    registry = StaticRegistry({d.name: ["http://offline"] for d in fleet.deployments})
    for d in fleet.deployments:  # populate without I/O
        registry.load(d.name).endpoints = [Endpoint(d.name, "offline", "http://offline")]
    policy = RoutingPolicy(fleet, registry, TokenCounter())
    classifier = Classifier(tasks=tuple(fleet.router.tasks), default_task=fleet.router.default_task)
    metrics = RouterMetrics([d.name for d in fleet.deployments], fleet.router.tasks)
    service = RouterService(fleet, policy, classifier, registry, metrics)
    try:
        d = service.decide(body, {})
    except RouterError as exc:
        status, err, _ = error_body(exc)
        return {"status": status, **err}
    return {"task": d.task, "model": d.model, "candidates": d.candidates, "reason": d.reason,
            "signals": d.signals, "language": d.language}
