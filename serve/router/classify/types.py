"""Value types shared by the classifier's signal families and its pipeline.

Nothing here ever shows prompt text: a :class:`Signal`'s ``detail`` is built only from closed vocabularies
(rule labels, known language names, file extensions), so it is safe to log and to return in headers. (A
:class:`Classification` keeps a bounded prose sample in memory until its language is first read; it is never
part of its repr, its reason or its signals.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

# Scope multipliers: a signal found in the last user turn counts fully; the same signal in earlier turns or in
# the system prompt counts less (they set the scene but the last turn says what is wanted now).
SCOPE_LAST = "last"
SCOPE_CONTEXT = "ctx"
SCOPE_SYSTEM = "sys"


class Signal(NamedTuple):
    """One piece of evidence for a task.

    Attributes:
        name: The signal family that produced it (``header``, ``modality``, ``tools``, ``code``, ``math``,
            ``reasoning``, ``general``, ``language``, ``thinking``).
        task: The task this evidence votes for.
        weight: Its contribution to the task's score, already scaled by scope.
        detail: A short label from a closed vocabulary (never prompt text), e.g. ``fenced block(python)``;
            evidence from earlier turns or the system prompt is shown with a ``ctx:`` / ``sys:`` prefix.
        scope: Where the evidence was found: ``last`` (the last user turn), ``ctx`` (earlier turns) or ``sys``
            (the system prompt). The pipeline weighs and caps evidence by this field, never by the detail text.

    A named tuple (immutable; several times cheaper to build than a frozen dataclass, and a request makes
    a dozen or more). Use ``signal._replace(scope=...)`` for a copy with another field.
    """

    name: str
    task: str
    weight: float
    detail: str
    scope: str = SCOPE_LAST


DEFAULT_CONTEXT_TASKS = ("code", "math", "vision", "reasoning", "general")


@dataclass(frozen=True)
class SignalContext:
    """What a signal family may know besides the request's text view.

    Attributes:
        tasks: The classifier's configured task names.
        headers: The request's headers (only the task header family reads them).
    """

    tasks: tuple[str, ...] = DEFAULT_CONTEXT_TASKS
    headers: Mapping[str, str] = field(default_factory=dict)


class Classification:
    """The classifier's verdict for one request.

    The task and the reason are decided when it is built; the language and the ordered signal list are only
    worked out when first read (the request path needs the task and the reason; ``/v1/route`` and the tools
    show the rest), from the bounded prose sample the classifier hands over.

    Attributes:
        task: The chosen task (one of the classifier's tasks).
        signals: Every signal that fired, strongest first (plus a ``language`` signal of weight 0).
        reason: Human-readable explanation, e.g. ``code: fenced block(python)+keyword(def)``.
        language: ISO 639-1 code of the last user turn's language (``und`` if unknown).
        scores: Score per task (empty when a deciding family settled the task).
    """

    __slots__ = ("task", "reason", "scores", "_found", "_language", "_sample", "_detect", "_default", "_signals")

    def __init__(self, task: str, signals: Iterable[Signal], reason: str, language: str | None = None,
                 scores: Mapping[str, float] | None = None, *, sample: str = "",
                 detect: Callable[[str], str] | None = None, default_task: str = "general") -> None:
        """Create a verdict.

        Args:
            task: The chosen task.
            signals: The signals that fired (any order; the ``language`` signal is added when ``language`` is
                worked out lazily).
            reason: The explanation.
            language: The language, or None to detect it from ``sample`` with ``detect`` on first read.
            scores: Score per task.
            sample: Bounded prose to detect the language of (kept in memory only, never shown).
            detect: The language detector.
            default_task: The task the ``language`` signal is filed under.
        """
        self.task = task
        self.reason = reason
        self.scores = dict(scores or {})
        self._found = tuple(signals)
        self._language = language
        self._sample = sample
        self._detect = detect
        self._default = default_task
        self._signals: tuple[Signal, ...] | None = None

    @property
    def language(self) -> str:
        """ISO 639-1 code of the last user turn's language (``und`` if unknown)."""
        if self._language is None:
            self._language = self._detect(self._sample) if self._detect is not None else "und"
            self._sample = ""
        return self._language

    @property
    def signals(self) -> tuple[Signal, ...]:
        """Every signal that fired, strongest first (stable: equal weights keep the order they were found)."""
        if self._signals is None:
            found = (*self._found, Signal("language", self._default, 0.0, self.language))
            self._signals = tuple(sorted(found, key=_strength))
        return self._signals

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Classification):
            return NotImplemented
        return (self.task, self.reason, self.language, self.signals) == (
            other.task, other.reason, other.language, other.signals)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Classification(task={self.task!r}, signals={self.signals!r}, reason={self.reason!r}, "
                f"language={self.language!r})")


def _strength(s: Signal) -> float:
    return -s.weight


@dataclass(frozen=True)
class Rule:
    """A precompiled pattern that votes for a task when it matches.

    Attributes:
        label: Detail label; if it contains ``{}`` the matched text (lower-cased) is substituted, but only
            when it belongs to ``vocab`` (otherwise ``*``), so no free prompt text can leak.
        task: Task the rule votes for.
        weight: Weight of one hit.
        pattern: Compiled regex; run on lower-cased text unless ``cased``.
        cased: Run on the original text (for case-sensitive syntax like ``SELECT ... FROM``).
        max_hits: Distinct matches counted (each adds ``weight``); 1 means "present or not".
        vocab: Pattern (full match) of the finite vocabulary allowed in ``label``'s ``{}``.
    """

    label: str
    task: str
    weight: float
    pattern: re.Pattern[str]
    cased: bool = False
    max_hits: int = 1
    vocab: re.Pattern[str] | None = None


def rule(label: str, task: str, weight: float, regex: str, *, cased: bool = False, max_hits: int = 1,
         vocab: Iterable[str] = ()) -> Rule:
    """Build a :class:`Rule`, compiling ``regex`` once (call at import time).

    Args:
        label: Detail label (may contain ``{}``).
        task: Task voted for.
        weight: Weight per hit.
        regex: Pattern source; lower-case unless ``cased``.
        cased: Match against the original text.
        max_hits: Distinct matches counted.
        vocab: Literal words or regex fragments allowed in the label's ``{}``; fragments that could match
            open-ended text (``\\w``, ``.``, ``[^``) are dropped, so the vocabulary stays finite.

    Returns:
        The compiled rule.
    """
    flags = re.MULTILINE
    safe = [v for v in vocab if not any(x in v for x in ("\\w", "\\S", ".", "[^", "*", "+"))]
    vocab_re = re.compile("(?:" + "|".join(safe) + ")") if safe else None
    return Rule(label, task, weight, re.compile(regex, flags), cased, max_hits, vocab_re)


def words(*items: str) -> str:
    """Join literal words/phrases (regex fragments allowed) into a word-bounded alternation."""
    return r"\b(?:" + "|".join(items) + r")(?!\w)"


def stems(*items: str) -> str:
    """Like :func:`words` but only the start is bounded, so inflected endings match (``lygt`` -> ``lygtis``)."""
    return r"\b(?:" + "|".join(items) + r")"


def anywhere(*items: str) -> str:
    """Unbounded alternation, for scripts written without spaces (Chinese, Japanese)."""
    return "(?:" + "|".join(items) + ")"


def apply_rules(rules: Iterable[Rule], text: str, lowered: str, factor: float, scope: str,
                family: str) -> list[Signal]:
    """Run ``rules`` over one scope of text and return the signals that fired.

    Args:
        rules: Rules to run.
        text: Original text of the scope.
        lowered: ``text.lower()``, computed once by the caller.
        factor: Scope multiplier applied to every weight.
        scope: Scope tag; non-``last`` scopes prefix the detail (``ctx:``/``sys:``).
        family: Signal family name.

    Returns:
        Fired signals (possibly empty).
    """
    out: list[Signal] = []
    if not text:
        return out
    prefix = "" if scope == SCOPE_LAST else scope + ":"
    for r in rules:
        target = text if r.cased else lowered
        if r.max_hits == 1:
            m = r.pattern.search(target)
            if m is None:
                continue
            hits = [_token(m.group(0), r)]
        else:
            seen: list[str] = []
            raw: set[str] = set()
            for m in r.pattern.finditer(target):
                key = m.group(0).lower().strip()
                if key in raw:
                    continue
                raw.add(key)
                seen.append(_token(key, r))
                if len(seen) >= r.max_hits:
                    break
            if not seen:
                continue
            hits = seen
        detail = r.label.format(",".join(dict.fromkeys(hits))) if "{}" in r.label else r.label
        out.append(Signal(family, r.task, round(r.weight * len(hits) * factor, 3), prefix + detail, scope))
    return out


def _token(matched: str, r: Rule) -> str:
    key = matched.lower().strip()
    return key if r.vocab is not None and r.vocab.fullmatch(key) else "*"
