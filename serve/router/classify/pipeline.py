"""The classifier: run the signal families in order and combine their votes into one task.

Decision rules, in order:

1. **Header.** ``x-qwen-task: <task>`` naming a known task wins outright.
2. **Modality.** Image or video parts anywhere in the conversation mean ``vision`` (when ``vision`` is a task):
   the request must reach a model that can see them. Audio parts mean ``audio`` when that task exists.
3. **Scores.** Every other signal adds its weight to its task's score. Evidence in the last user turn counts
   fully, in earlier turns x0.35, in the system prompt x0.2 (``context_weight``/``system_weight`` options);
   context adds at most ``context_cap`` (0.9) per task, so it tips weak evidence but never decides alone.
   The highest-scoring task wins if its score reaches ``threshold`` (default 1.0); otherwise the default task.
4. **Ties** (scores within 1e-6) are broken by ``tie_order`` (default code > math > reasoning > general):
   the more specialised deployment handles the overlap better (a coder model does maths in code; the math model
   shows its work step by step).
5. **Confident rules decide; otherwise the linear model.** When the best rule score reaches ``confident``
   (default 3.5) and leads the runner-up by ``margin`` (0.5), the rules' task stands. Otherwise the small
   learned model (:mod:`.linear`: logistic regression over hashed character n-grams, words and the rule scores)
   picks the task; a class that is not configured falls back to the default task, and a specialised class the
   rules did not also reach the threshold for needs p >= ``linear_min_p`` (else the rules' decision stands).
6. **Continuation.** A short last turn (at most ``follow_up_chars``) with no task evidence of its own ("now
   make it faster", "and if it were 5?", "why?") inherits the task the earlier turns point to, unless the
   linear model is fairly sure (p >= 0.6) the last turn is about something else ("thanks! unrelated: a good
   movie for tonight?").

Hard cases, decided on purpose:

* A maths problem that mentions Python: if the user asks for *code* ("write a Python function that computes
  ...") the ``request(code)`` signal (2.5) wins; if the user asks for *the number* ("how many ..., I tried in
  Python") the maths evidence wins, since a bare language name only scores 0.6.
* Code that contains formulas is code: maths rules scan prose with fenced blocks removed.
* Casual chat about maths ("I hated maths at school") is general: the topic word scores 0.3 only.
* Proofs go to reasoning (2.5) unless the maths evidence is larger (e.g. a LaTeX-heavy exercise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from serve.router.facts import RequestFacts

from .base import CONTEXT_WEIGHT, SYSTEM_WEIGHT, SignalFamily
from .extract import (
    DEFAULT_CONTEXT_CHARS,
    DEFAULT_HEAD_CHARS,
    DEFAULT_SYSTEM_CHARS,
    DEFAULT_TAIL_CHARS,
    RequestView,
    view_of,
)
from .features import build_index
from .header import HEADER_NAME
from .language import SAMPLE_CHARS, detect_language
from .linear import LinearModel, dense_features, load_default, text_features
from .registry import SIGNAL_FAMILIES, FamilyOptions
from .types import SCOPE_CONTEXT, SCOPE_LAST, SCOPE_SYSTEM, Classification, Signal, SignalContext

logger = logging.getLogger(__name__)

DEFAULT_TASKS = ("code", "math", "vision", "reasoning", "general")
DEFAULT_TIE_ORDER = ("code", "math", "reasoning", "general")
DEFAULT_THRESHOLD = 1.0
REASON_SIGNALS = 4
# Earlier turns and the system prompt together add at most this much to a task: context can tip a weak signal in
# the last turn over the threshold, but never routes a request on its own.
DEFAULT_CONTEXT_CAP = 0.9
DEFAULT_CONFIDENT = 3.5
DEFAULT_MARGIN = 0.5
DEFAULT_FOLLOW_UP_CHARS = 160
DEFAULT_LINEAR_MIN_P = 0.3
# A follow-up inherits the context's task when the earlier turns' (decayed) evidence reaches this.
FOLLOW_UP_MIN = 0.35
# The linear model overrides a continuation only when it is at least this sure of another task.
FOLLOW_UP_OVERRIDE_P = 0.6

_OPTION_KEYS = frozenset({"threshold", "context_cap", "context_weight", "system_weight", "tie_order", "header_name",
                          "head_chars", "tail_chars", "context_chars", "system_chars", "learned", "confident",
                          "margin", "follow_up_chars", "linear_min_p"})


class Classifier:
    """Classifies chat-completions / completions requests into tasks, without calling a model.

    Options (all optional): ``threshold`` (float, 1.0), ``context_weight`` (0.35), ``system_weight`` (0.2),
    ``context_cap`` (0.9, most that context can add to one task),
    ``tie_order`` (sequence of task names), ``header_name`` (``x-qwen-task``), ``head_chars`` (1024),
    ``tail_chars`` (3072), ``context_chars`` (2048), ``system_chars`` (1024), ``learned`` (True: use the
    shipped linear model when the rules are not confident), ``confident`` (3.5) and ``margin`` (0.5): rule
    confidence, ``follow_up_chars`` (160, 0 disables continuation), ``linear_min_p`` (0.3, see the module docstring).
    """

    def __init__(self, tasks: Sequence[str] = DEFAULT_TASKS, default_task: str = "general",
                 options: Mapping[str, Any] | None = None, linear: LinearModel | None = None) -> None:
        """Create a classifier.

        Args:
            tasks: The configured task names.
            default_task: Task chosen when no evidence reaches the threshold; must be in ``tasks``.
            options: Tuning knobs (see the class docstring); unknown keys raise ``ValueError``.
            linear: Linear model to use instead of the shipped one (training and tests).

        Raises:
            ValueError: If ``default_task`` is not in ``tasks`` or an option is unknown.
        """
        opts = dict(options or {})
        unknown = set(opts) - _OPTION_KEYS
        if unknown:
            raise ValueError(f"unknown classifier options: {sorted(unknown)}")
        if default_task not in tasks:
            raise ValueError(f"default task {default_task!r} is not one of the tasks {list(tasks)}")
        self.tasks = tuple(dict.fromkeys(tasks))
        self.default_task = default_task
        self.threshold = float(opts.get("threshold", DEFAULT_THRESHOLD))
        self.context_cap = float(opts.get("context_cap", DEFAULT_CONTEXT_CAP))
        order = tuple(opts.get("tie_order", DEFAULT_TIE_ORDER))
        self.tie_order = tuple(t for t in order if t in self.tasks) + tuple(
            t for t in self.tasks if t not in order)
        self.bounds = {k: int(opts.get(k, d)) for k, d in (
            ("head_chars", DEFAULT_HEAD_CHARS), ("tail_chars", DEFAULT_TAIL_CHARS),
            ("context_chars", DEFAULT_CONTEXT_CHARS), ("system_chars", DEFAULT_SYSTEM_CHARS))}
        ctx = float(opts.get("context_weight", CONTEXT_WEIGHT))
        sys_w = float(opts.get("system_weight", SYSTEM_WEIGHT))
        self.confident = float(opts.get("confident", DEFAULT_CONFIDENT))
        self.margin = float(opts.get("margin", DEFAULT_MARGIN))
        self.follow_up_chars = int(opts.get("follow_up_chars", DEFAULT_FOLLOW_UP_CHARS))
        self.linear_min_p = float(opts.get("linear_min_p", DEFAULT_LINEAR_MIN_P))
        self.linear = linear if linear is not None else (load_default() if opts.get("learned", True) else None)
        family_opts = FamilyOptions(ctx, sys_w, str(opts.get("header_name", HEADER_NAME)))
        self.families: tuple[SignalFamily, ...] = tuple(make(family_opts) for make in SIGNAL_FAMILIES)
        self._deciding = frozenset(f.name for f in self.families if f.decides)
        self._context = SignalContext(tasks=self.tasks)
        build_index()  # the lexicon automaton is built here, not on the first request

    def classify(self, request: RequestFacts | Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> Classification:
        """Classify one request.

        Args:
            request: The request's facts (or a raw chat-completions / completions body).
            headers: Request headers, for the ``x-qwen-task`` override.

        Returns:
            The classification; ``reason`` and signal details never contain prompt text.
        """
        view = view_of(request, **self.bounds)
        sample = view.last.prose or view.context.prose  # the language is detected from it when first asked
        ctx = SignalContext(self.tasks, headers) if headers else self._context
        signals: list[Signal] = []
        decisive = False  # did a deciding family say anything (a family's signals carry its name)
        for family in self.families:
            found = family.detect(view, ctx)
            if found:
                signals += found
                decisive = decisive or family.decides
        for family in self.families if decisive else ():  # deciding families, in priority order
            if not family.decides:
                break
            mine = [s for s in signals if s.name == family.name and s.weight > 0 and s.task in self.tasks]
            if mine:
                task = mine[0].task
                reason = (f"header: {mine[0].detail}" if family.name == "header"
                          else self._explain(task, mine))
                return self._result(task, signals, reason, sample)
        scores = self._scores(signals)
        task, reason, extra = self._decide_text(view, signals, scores)
        return self._result(task, [*signals, *extra], reason, sample, scores)

    def linear_inputs(self, body: Mapping[str, Any]) -> tuple[Any, Any]:
        """The linear model's inputs for ``body``: (hashed feature ids, dense features). Used by training."""
        view = view_of(body, **self.bounds)
        return text_features(view.last.focus_lowered), dense_features(view, self._collect(view, self._context))

    def _decide_text(self, view: RequestView, signals: Sequence[Signal],
                     scores: Mapping[str, float]) -> tuple[str, str, list[Signal]]:
        """Rules when confident, else continuation / linear model; returns (task, reason, extra signals)."""
        task = self._decide(scores)
        ranked = sorted(scores.values(), reverse=True) + [0.0, 0.0]
        if ranked[0] >= self.confident and ranked[0] - ranked[1] >= self.margin:
            return task, self._explain(task, signals), []
        extra: list[Signal] = []
        lr_task, lr_p = "", 0.0
        if self.linear is not None:
            probs = self.linear.probabilities(text_features(view.last.focus_lowered), dense_features(view, signals))
            k = int(probs.argmax())
            lr_task, lr_p = self.linear.classes[k], float(probs[k])
            extra.append(Signal("linear", lr_task, round(lr_p, 3), f"linear(p={lr_p:.2f})"))
        follow = self._follow_up(view, signals)
        if follow is not None and not (lr_task not in ("", follow) and lr_p >= FOLLOW_UP_OVERRIDE_P):
            extra.append(Signal("continuation", follow, 0.0, "continuation"))
            return follow, f"{follow}: continuation of earlier turns", extra
        weak = lr_p < self.linear_min_p and scores.get(lr_task, 0.0) < self.threshold
        if lr_task and not (weak and lr_task != self.default_task):
            chosen = lr_task if lr_task in self.tasks else self.default_task
            rules = self._explain(chosen, signals) if scores.get(chosen, 0.0) > 0 else ""
            return chosen, f"{chosen}: linear(p={lr_p:.2f})" + (f"; rules {rules}" if rules else ""), extra
        if task == self.default_task and scores.get(task, 0.0) < self.threshold:
            return task, f"{task}: no task signal above threshold", extra
        return task, self._explain(task, signals), extra

    def _follow_up(self, view: RequestView, signals: Sequence[Signal]) -> str | None:
        """The earlier turns' task when the last turn is a short follow-up without evidence of its own."""
        if not view.context.text or len(view.last.prose.strip()) > self.follow_up_chars:
            return None
        last: dict[str, float] = {}
        ctx: dict[str, float] = {}
        for s in signals:
            if s.task not in self.tasks or s.name in self._deciding or s.scope == SCOPE_SYSTEM:
                continue
            target = ctx if s.scope == SCOPE_CONTEXT else last
            target[s.task] = target.get(s.task, 0.0) + s.weight
        if any(v >= self.threshold for t, v in last.items() if t != self.default_task):
            return None
        best = max((t for t in self.tie_order if t != self.default_task), key=lambda t: ctx.get(t, 0.0),
                   default=None)
        if best is None or ctx.get(best, 0.0) < FOLLOW_UP_MIN + last.get(self.default_task, 0.0):
            return None
        return best

    def _collect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
        signals: list[Signal] = []
        for family in self.families:
            signals += family.detect(view, ctx)
        return signals

    def _scores(self, signals: Sequence[Signal]) -> dict[str, float]:
        scores: dict[str, float] = {}
        context: dict[str, float] = {}
        for s in signals:
            if s.task not in self.tasks or s.name in self._deciding:
                continue
            target = scores if s.scope == SCOPE_LAST else context
            target[s.task] = target.get(s.task, 0.0) + s.weight
        for task, value in context.items():
            scores[task] = scores.get(task, 0.0) + min(value, self.context_cap)
        return {t: round(v, 3) for t, v in scores.items()}

    def _decide(self, scores: Mapping[str, float]) -> str:
        best_task: str | None = None
        best = 0.0
        for task in self.tie_order:
            score = scores.get(task, 0.0)
            if score >= self.threshold - 1e-9 and (best_task is None or score > best + 1e-6):
                best_task, best = task, score
        return best_task or self.default_task

    @staticmethod
    def _explain(task: str, signals: Sequence[Signal]) -> str:
        mine = sorted((s for s in signals if s.task == task and s.weight > 0), key=lambda s: -s.weight)
        return f"{task}: " + "+".join(s.detail for s in mine[:REASON_SIGNALS])

    def _result(self, task: str, signals: Sequence[Signal], reason: str, sample: str,
                scores: Mapping[str, float] | None = None) -> Classification:
        logger.debug("classified task=%s reason=%s", task, reason)
        return Classification(task, signals, reason, None, scores, sample=sample[:SAMPLE_CHARS],
                              detect=detect_language, default_task=self.default_task)
