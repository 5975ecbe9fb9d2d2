"""Base class for the text-scanning signal families (code, math, reasoning, general)."""

from __future__ import annotations

from collections.abc import Sequence

from .extract import RequestView, Scope
from .types import SCOPE_CONTEXT, SCOPE_LAST, SCOPE_SYSTEM, Rule, Signal, apply_rules

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

    def detect(self, view: RequestView) -> list[Signal]:
        """Return every signal of this family found in ``view``."""
        out: list[Signal] = []
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
            out += self.extra(scope, factor, "" if scope_name == SCOPE_LAST else scope_name + ":")
        return out

    def gate(self, label: str, text: str) -> bool:
        """Whether rule ``label`` is worth running on ``text`` (cheap pre-check; default: always)."""
        return True

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Family-specific evidence beyond plain rules (default: none)."""
        return []


_ATTR = {SCOPE_LAST: "last", SCOPE_CONTEXT: "context", SCOPE_SYSTEM: "system"}
