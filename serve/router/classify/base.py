"""The contract every signal family follows, and the base class of the text-scanning ones.

A signal family is a small class with a ``name``, a ``decides`` flag and one method,
``detect(view, ctx) -> list[Signal]`` (:class:`SignalFamily`). The classifier runs the families listed in
:data:`serve.router.classify.registry.SIGNAL_FAMILIES`, in order:

- a family with ``decides = True`` (the task header, image/video parts) settles the task outright when one
  of its signals has a positive weight for a configured task; the first such family wins;
- every other family's signals add their weight to their task's score, by scope (:attr:`Signal.scope`:
  evidence in earlier turns and the system prompt counts less and is capped).

Adding a signal family: write the class (a :class:`TextFamily` subclass with rules for text evidence), add
it to ``SIGNAL_FAMILIES``. New or changed rules change the inputs of the learned model
(:mod:`.linear`, whose dense features are the rule scores per task and scope): retrain it with
``bench/route_eval/train.py`` and check accuracy with ``bench/route_eval/run.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .extract import RequestView, Scope
from .types import SCOPE_CONTEXT, SCOPE_LAST, SCOPE_SYSTEM, Rule, Signal, SignalContext, apply_rules


class SignalFamily(Protocol):
    """One kind of evidence about a request's task."""

    name: str
    #: A positive signal of this family settles the task outright (no scoring).
    decides: bool

    def detect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
        """Every signal of this family found in ``view`` (never prompt text in a detail)."""
        ...

# Documented scope weights: evidence in earlier turns counts 35 %, in the system prompt 20 %.
CONTEXT_WEIGHT = 0.35
SYSTEM_WEIGHT = 0.2


class TextFamily:
    """Runs a family's rules over the last turn, the context and the system prompt.

    Subclasses set ``name``, ``rules`` (scanned on the full text, code included), ``prose_rules`` (scanned on
    the prose copy, fenced code removed) and ``focus_rules`` (keyword/intent rules, scanned on the start and
    end of the prose only, which keeps long prompts fast), and may override :meth:`extra`.
    """

    name = "text"
    decides = False
    rules: Sequence[Rule] = ()
    prose_rules: Sequence[Rule] = ()
    focus_rules: Sequence[Rule] = ()

    def __init__(self, context_weight: float = CONTEXT_WEIGHT, system_weight: float = SYSTEM_WEIGHT) -> None:
        """Create the family.

        Args:
            context_weight: Multiplier for signals found in earlier turns.
            system_weight: Multiplier for signals found in the system prompt.
        """
        self.scopes = ((SCOPE_LAST, 1.0), (SCOPE_CONTEXT, context_weight), (SCOPE_SYSTEM, system_weight))

    def detect(self, view: RequestView, ctx: SignalContext | None = None) -> list[Signal]:
        """Return every signal of this family found in ``view`` (nothing when its task is not configured)."""
        out: list[Signal] = []
        if ctx is not None and self.name not in ctx.tasks:
            return out
        for scope_name, factor in self.scopes:
            scope: Scope = getattr(view, _ATTR[scope_name])
            if not scope.text or factor <= 0:
                continue
            if self.rules:
                rules = [r for r in self.rules if self.gate(r.label, scope.text)]
                out += apply_rules(rules, scope.text, scope.lowered, factor, scope_name, self.name)
            if self.prose_rules:
                out += apply_rules(self.prose_rules, scope.prose, scope.prose_lowered, factor, scope_name,
                                   self.name)
            if self.focus_rules:
                out += apply_rules(self.focus_rules, scope.focus_lowered, scope.focus_lowered, factor, scope_name,
                                   self.name)
            found = self.extra(scope, factor, "" if scope_name == SCOPE_LAST else scope_name + ":")
            if scope_name != SCOPE_LAST:
                found = [s._replace(scope=scope_name) for s in found]
            out += found
        return out

    def gate(self, label: str, text: str) -> bool:
        """Whether rule ``label`` is worth running on ``text`` (cheap pre-check; default: always)."""
        return True

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Family-specific evidence beyond plain rules (default: none)."""
        return []


_ATTR = {SCOPE_LAST: "last", SCOPE_CONTEXT: "context", SCOPE_SYSTEM: "system"}
