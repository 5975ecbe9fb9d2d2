"""One line per deployment for ``qwen-serve status``: replicas, autoscaling and cold starts (from ``/v1/status``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def deployment_summary(name: str, endpoints: Sequence[Any], status: Mapping[str, Any]) -> str:
    """``2 replica(s), desired 2 (1..2), signal ongoing 5.5/4 per replica; cold starts 1 (last 81.6s)``.

    Args:
        name: The deployment.
        endpoints: Its rows of ``/v1/status`` ``endpoints``.
        status: The whole ``/v1/status`` answer (``autoscaling`` and ``cold_start`` sections, when present).
    """
    auto = (status.get("autoscaling") or {}).get(name) or {}
    cold = (status.get("cold_start") or {}).get(name) or {}
    if cold.get("scaled_to_zero"):
        text = "scaled to zero" + (f" ({cold['held']} request(s) held, waking)" if cold.get("held") else "")
    else:
        text = f"{len(endpoints)} replica(s)"
    if auto.get("autoscaled"):
        desired = auto.get("desired")
        text += (f", desired {'?' if desired is None else desired} ({auto.get('min_replicas')}.."
                 f"{auto.get('max_replicas')})")
        value = auto.get("value")
        shown = "-" if value is None else f"{float(value):.2f}"
        text += f", signal {auto.get('signal')} {shown}/{auto.get('target')} per replica"
    if cold:
        last = cold.get("last_cold_start") or {}
        first = last.get("first_token_s")
        text += f"; cold starts {cold.get('cold_starts', 0)}"
        if first is not None:
            text += f" (last: replica after {float(last.get('ready_s') or 0):.1f}s, first token after {first:.1f}s)"
    return text
