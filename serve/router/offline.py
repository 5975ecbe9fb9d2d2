"""Routing decisions computed from a fleet config alone (``qwen-serve route --local``).

Every deployment is assumed healthy and idle, so the answer is the chooser's first choice; the running
stack's ``/v1/route`` also accounts for load and health. The request path is the stack's own
(:func:`serve.router.app.build_service`, the fleet's classifier options included), so the dry run classifies
and chooses exactly as the router does. Nothing here imports vLLM or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serve.errors import RouterError, error_body

if TYPE_CHECKING:  # pragma: no cover
    from serve.config import FleetConfig


def route_offline(fleet: FleetConfig, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the ``/v1/route`` answer for ``body`` under ``fleet``, assuming an idle, healthy fleet."""
    from serve.router.app import build_service
    from serve.router.facts import facts_of
    from serve.router.upstream import Endpoint, StaticRegistry
    from serve.router.validate import validate_request

    registry = StaticRegistry({d.name: ["http://offline"] for d in fleet.deployments})
    for d in fleet.deployments:  # populate without I/O
        registry.load(d.name).endpoints = [Endpoint(d.name, "offline", "http://offline")]
    service = build_service(fleet, registry)
    hdrs = headers or {}
    try:
        kind = "chat" if "messages" in body else "completions"
        validate_request(body, kind, fleet.security.limits)
        decision = service.decide(facts_of(body, kind, hdrs), body.get("model"), hdrs)
    except RouterError as exc:
        status, err, _ = error_body(exc)
        return {"status": status, **err}
    return decision.to_dict()
