"""Choose the deployment: explicit model or task policy, capability checks, load and health, spill-over.

The task policy is data (``fleet.router.tasks``): task -> ordered candidate deployments.
:class:`DeploymentChooser` keeps the candidates that can serve the request (:meth:`~DeploymentChooser.capable`)
and then walks them in order (:meth:`~DeploymentChooser.choose_deployment`), taking the first one that

1. can serve the request (vision for image parts, a tool parser for ``tools``, Qwen3 for thinking, and a
   context length that holds the prompt plus ``max_tokens``),
2. has at least one healthy engine endpoint, and
3. is not saturated (ongoing requests below ``saturation.max_ongoing_ratio`` of its capacity).

If every capable, healthy candidate is saturated, the least loaded one below its hard limit (ongoing +
queued) still takes the request; if none is below its hard limit the answer is 503 with ``Retry-After``.
Every decision carries a reason string that ends up in ``x-qwen-route-reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serve.errors import InvalidRequestError, ModelNotFoundError, OverloadedError
from serve.router.facts import RequestFacts
from serve.router.tokens import TokenCounter
from serve.router.upstream import EndpointRegistry

if TYPE_CHECKING:  # pragma: no cover
    from serve.config import DeploymentSpec, FleetConfig
    from serve.router.classify.types import Classification

logger = logging.getLogger(__name__)


@dataclass
class Decision:
    """The outcome of routing one request."""

    task: str
    model: str
    candidates: list[str]
    reason: str
    signals: list[dict[str, Any]] = field(default_factory=list)
    language: str | None = None
    spilled: str | None = None  # spill-over reason (closed set) when not the first candidate
    adapter: str | None = None
    explicit: bool = False
    #: The classifier's verdict (``model: auto``): its signals and language are read only when the decision is
    #: shown (``to_dict``), so the request path never works them out.
    classification: Classification | None = field(default=None, repr=False, compare=False)

    @property
    def engine_model(self) -> str:
        """The ``model`` the engine is sent: the deployment, or its served adapter id."""
        from serve.lora import served_adapter_id

        return self.model if self.adapter is None else served_adapter_id(self.model, self.adapter)

    def to_dict(self) -> dict[str, Any]:
        """The decision as ``POST /v1/route`` (and ``qwen-serve route``) shows it."""
        signals, language = list(self.signals), self.language
        c = self.classification
        if c is not None:
            signals = [{"name": s.name, "task": s.task, "weight": round(s.weight, 3), "detail": s.detail}
                       for s in c.signals]
            language = c.language
        return {"task": self.task, "model": self.model, "candidates": list(self.candidates), "reason": self.reason,
                "signals": signals, "language": language, "spilled": self.spilled}


class DeploymentChooser:
    """Chooses the deployment: task policy + capability checks + spill-over over a fleet config.

    Args:
        fleet: The :class:`serve.config.FleetConfig`.
        registry: Endpoint registry with the router's load bookkeeping.
        tokens: Token counter for the context-length check.
    """

    def __init__(self, fleet: FleetConfig, registry: EndpointRegistry, tokens: TokenCounter) -> None:
        self.fleet = fleet
        self.registry = registry
        self.tokens = tokens
        self.specs = {d.name: d for d in fleet.deployments}
        self.ratio = float(fleet.router.saturation.max_ongoing_ratio)
        self.queue_threshold = fleet.router.saturation.queue_threshold
        # Derived per-deployment facts, computed once (the config's properties recompute on every access).
        self.caps = {d.name: d.capabilities for d in fleet.deployments}
        self.ctx = {d.name: int(d.context_length) for d in fleet.deployments}
        self.limits = {d.name: (int(d.effective_max_ongoing_requests), int(d.effective_max_queued_requests))
                       for d in fleet.deployments}
        # hook(apisurface): what each deployment serves (generate / embed / score); chat needs generate.
        self.runners = {d.name: d.resolved_runner for d in fleet.deployments}
        # hook(apisurface): run-time LoRA adapters (serve/router/adapters.py), set by the app when enabled.
        self.runtime_adapters: Any = None

    # --- capacity ---------------------------------------------------------------------------------
    def capacity(self, name: str) -> tuple[int, int]:
        """(soft, hard) in-flight limits of a deployment over its live endpoints."""
        max_ongoing, max_queued = self.limits[name]
        n = max(1, len(self.registry.load(name).healthy_endpoints))
        ongoing = max_ongoing * n
        hard = ongoing + max_queued * n
        return max(1, int(ongoing * self.ratio)), hard

    def saturated(self, name: str) -> bool:
        """Whether a deployment is at or above its spill-over threshold: this router's in-flight requests, or
        (with ``saturation.queue_threshold``) the requests waiting in its engines' own queues."""
        if self.registry.load(name).ongoing >= self.capacity(name)[0]:
            return True
        return self.queue_threshold is not None and self.engine_waiting(name) > self.queue_threshold

    def engine_waiting(self, name: str) -> int:
        """Requests waiting in the engines of a deployment, from heartbeats no older than ``STATS_FRESH_S``."""
        now = time.time()
        return sum(e.stats.waiting for e in self.registry.load(name).healthy_endpoints
                   if e.stats is not None and e.stats.fresh(now))

    # --- capability -------------------------------------------------------------------------------
    def incapable(self, name: str, facts: RequestFacts) -> str | None:
        """Why deployment ``name`` cannot serve the request (a short closed-set reason), or None."""
        caps = self.caps[name]
        if self.runners[name] != "generate":  # embedding/score models never chat
            return "not_generative"
        if facts.vision and not caps.vision:
            return "no_vision"
        if facts.tools and not caps.tools:
            return "no_tools"
        if facts.thinking and not caps.thinking:
            return "no_thinking"
        if not self.tokens.fits(facts, self.ctx[name], facts.max_tokens):
            return "context"
        return None

    def capable(self, task: str, facts: RequestFacts) -> tuple[list[str], list[str], list[str]]:
        """Split a task's candidates by capability.

        Returns:
            ``(candidates, capable, skipped)``: every candidate in policy order, those able to serve the
            request, and ``name:reason`` for the others.
        """
        policy = self.fleet.router.tasks.get(task)
        candidates: Sequence[str] = list(policy.candidates) if policy is not None else []
        capable: list[str] = []
        skipped: list[str] = []
        for name in candidates:
            why = self.incapable(name, facts)
            if why is None:
                capable.append(name)
            else:
                skipped.append(f"{name}:{why}")
        return list(candidates), capable, skipped

    # --- decisions --------------------------------------------------------------------------------
    def resolve_model(self, model: str | None) -> tuple[str | None, str | None, str | None]:
        """Split the ``model`` field into (deployment, adapter, task-or-None-for-classify).

        Returns:
            ``(deployment, adapter, None)`` for an explicit deployment (or ``deployment:adapter``, or an
            alias of either), ``(None, None, task)`` for a virtual model; a task of ``""`` means "classify".

        Raises:
            ModelNotFoundError: Unknown model.
        """
        aliases: Mapping[str, str | None] = self.fleet.router.aliases
        if model is None or model == "":
            return None, None, ""
        if model in self.specs:
            return model, None, None
        if model in aliases:
            target = aliases[model]
            if target is None or target in self.fleet.router.tasks:
                return None, None, target or ""
            return self.resolve_model(target)  # alias of a deployment or `deployment:adapter`
        base, sep, adapter = model.partition(":")
        if sep and base in self.specs:
            lora = self.specs[base].lora
            if lora is not None and adapter in lora.adapters:
                return base, adapter, None
            if self.runtime_adapters is not None and self.runtime_adapters.listed(base, adapter):  # hook(apisurface)
                return base, adapter, None
        raise ModelNotFoundError(
            f"The model `{model}` does not exist. Use one of: {', '.join(self.model_ids())}.",
            param="model", code="model_not_found",
        )

    def model_ids(self) -> list[str]:
        """Every addressable model id: deployments, adapters and virtual models."""
        ids = list(self.specs)
        for name, spec in self.specs.items():
            if spec.lora is not None:
                ids.extend(f"{name}:{a}" for a in spec.lora.adapters)
        if self.runtime_adapters is not None:  # hook(apisurface)
            ids.extend(i for i in self.runtime_adapters.model_ids() if i not in ids)
        ids.extend(a for a in self.fleet.router.aliases if a not in ids)
        return ids

    def check_named(self, name: str, facts: RequestFacts) -> str:
        """Validate an explicitly named deployment; returns the reason string.

        Raises:
            InvalidRequestError: The deployment cannot serve this request.
            OverloadedError: It has no healthy endpoint or is above its hard limit.
        """
        why = self.incapable(name, facts)
        if why is not None:
            raise InvalidRequestError(_explain_incapable(why, name, self.specs[name]), param=_param_of(why),
                                      code=why)
        self.check_available(name)
        return "explicit model"

    def choose_deployment(self, task: str, facts: RequestFacts) -> tuple[str, list[str], str, str | None]:
        """Walk the task's capable candidates by load and health; returns (deployment, candidates, reason,
        spill-reason).

        Raises:
            InvalidRequestError: No candidate can serve the request at all (capabilities).
            OverloadedError: Capable candidates exist but none can take it now.
        """
        candidates, capable, skipped = self.capable(task, facts)
        if not capable:
            raise InvalidRequestError(_no_candidate_message(task, facts, skipped), param=_param_of_needs(facts),
                                      code="no_capable_deployment")
        spill: str | None = None
        fallback: list[str] = []
        for name in capable:
            load = self.registry.load(name)
            if not load.healthy_endpoints:
                skipped.append(f"{name}:down")
                spill = spill or "unhealthy"
                continue
            if self.saturated(name):
                skipped.append(f"{name}:saturated")
                spill = spill or "saturated"
                fallback.append(name)
                continue
            return name, candidates, _reason(task, name, skipped), (spill if name != capable[0] else None)
        for name in sorted(fallback, key=lambda n: self.registry.load(n).ongoing / self.capacity(n)[1]):
            if self.registry.load(name).ongoing < self.capacity(name)[1]:
                return name, candidates, _reason(task, name, skipped) + " (all saturated: least loaded)", spill
        raise OverloadedError(
            f"All deployments for task `{task}` are busy or down; retry later.", code="overloaded",
            retry_after=2.0,
        )

    def check_available(self, name: str) -> None:
        """Raise unless deployment ``name`` has a healthy endpoint and room below its hard limit.

        Called at decision time and again by the dispatcher right before it counts the request in flight,
        with no ``await`` in between: between the decision and the dispatch the event loop runs other
        requests' decisions (a burst is parsed and decided before any of it is sent), so only the second
        check bounds what a deployment admits.

        Raises:
            OverloadedError: No healthy endpoint (``deployment_unavailable``) or at capacity (``overloaded``).
        """
        load = self.registry.load(name)
        if not load.healthy_endpoints:
            raise OverloadedError(f"Deployment `{name}` has no healthy replica right now; retry later.",
                                  code="deployment_unavailable", retry_after=5.0)
        if load.ongoing >= self.capacity(name)[1]:
            raise OverloadedError(f"Deployment `{name}` is at capacity; retry later.", code="overloaded",
                                  retry_after=2.0)


def _reason(task: str, chosen: str, skipped: list[str]) -> str:
    base = f"task={task} -> {chosen}"
    return base + (" (skipped " + ", ".join(skipped) + ")" if skipped else "")


def _param_of(why: str) -> str:
    return {"no_vision": "messages", "no_tools": "tools", "no_thinking": "chat_template_kwargs",
            "context": "max_tokens"}.get(why, "model")


def _param_of_needs(facts: RequestFacts) -> str:
    if facts.vision:
        return "messages"
    if facts.tools:
        return "tools"
    return "max_tokens"


def _explain_incapable(why: str, name: str, spec: DeploymentSpec) -> str:
    if why == "not_generative":
        return (f"Model `{name}` is an embedding or score model (runner {spec.resolved_runner}); it serves "
                "/v1/embeddings, /pooling, /score and /rerank, not chat or completions.")
    if why == "no_vision":
        return f"Model `{name}` does not accept images; send them to a vision model (Qwen2.5-VL)."
    if why == "no_tools":
        return f"Model `{name}` has no tool-call parser configured; `tools` cannot be used with it."
    if why == "no_thinking":
        return f"Model `{name}` does not support thinking (enable_thinking is for Qwen3 models)."
    return (f"The prompt plus max_tokens does not fit the context length of `{name}` "
            f"({spec.context_length} tokens); shorten the prompt or lower max_tokens.")


def _no_candidate_message(task: str, facts: RequestFacts, skipped: list[str]) -> str:
    if facts.vision:
        return "This request contains images but no vision-capable model is deployed for it."
    if facts.tools:
        return "This request uses tools but no deployment with a tool-call parser serves it."
    if facts.thinking:
        return "enable_thinking was requested but no thinking-capable (Qwen3) deployment serves this task."
    if any(s.endswith(":context") for s in skipped):
        return ("The prompt plus max_tokens does not fit the context length of any deployment for task "
                f"`{task}`; shorten the prompt or lower max_tokens.")
    return f"No deployment is configured for task `{task}`."
