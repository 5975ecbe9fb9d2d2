"""Turn a request's facts into the bounded text views the signal families scan.

Only a bounded amount of text is ever scanned, so classification stays fast for long prompts:

* last user turn: its first ``head_chars`` plus its last ``tail_chars`` (instructions tend to sit at the
  start, the question at the end; the middle of a long paste adds little);
* context: the earlier turns, newest first, up to ``context_chars`` in total;
* system prompt: its first ``system_chars``.

Fenced code blocks are removed from a "prose" copy of each view (math/reasoning/general signals scan prose, so
formulas inside code do not make a request look like maths); fence language tags are kept for the code family.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from serve.router.facts import SYSTEM_ROLES, RequestFacts, facts_of

from .features import Features

DEFAULT_HEAD_CHARS = 1024
DEFAULT_TAIL_CHARS = 3072
DEFAULT_CONTEXT_CHARS = 2048
DEFAULT_SYSTEM_CHARS = 1024
# Intent/keyword rules look only at the start and the end of the prose (see Scope.focus_lowered).
FOCUS_CHARS = 640

# A fenced block: ``` or ~~~ with optional language tag. Unterminated fences run to the end of the text.
FENCE_RE = re.compile(r"(?:```|~~~)[ \t]*([\w+#.-]*)[^\n]*\n?(.*?)(?:```|~~~|\Z)", re.DOTALL)
# Fence tags that mark maths, not code.
MATH_FENCES = frozenset({"latex", "tex", "math", "katex", "mathjax"})

@dataclass(frozen=True)
class Scope:
    """One bounded piece of request text, with its prose (code-free) copy and fence tags.

    Attributes:
        text: Bounded original text.
        lowered: ``text.lower()``.
        prose: ``text`` with non-maths fenced blocks replaced by a space.
        prose_lowered: ``prose.lower()``.
        fences: Language tags of the code fences found (lower-case, possibly ``""`` for untagged).
        focus_lowered: The first and last :data:`FOCUS_CHARS` characters of ``prose_lowered``: where intent
            words ("write a function", "prove", "translate") are; keyword rules scan only this.
    """

    text: str = ""
    lowered: str = ""
    prose: str = ""
    prose_lowered: str = ""
    fences: tuple[str, ...] = ()
    focus_lowered: str = ""

    @classmethod
    def of(cls, text: str) -> Scope:
        """Build a scope from already-bounded text."""
        if not text:
            return _EMPTY if cls is Scope else cls()
        fences: list[str] = []
        if "```" in text or "~~~" in text:
            def _drop(m: re.Match[str]) -> str:
                tag = m.group(1).lower()
                if tag in MATH_FENCES:
                    return m.group(2)
                fences.append(tag)
                return " "
            prose = FENCE_RE.sub(_drop, text)
        else:
            prose = text
        lowered = text.lower()
        lowered_prose = lowered if prose is text else prose.lower()  # no fences: lower-case once
        if len(lowered_prose) > 2 * FOCUS_CHARS:
            focus = lowered_prose[:FOCUS_CHARS] + "\n" + lowered_prose[-FOCUS_CHARS:]
        else:
            focus = lowered_prose
        return cls(text, lowered, prose, lowered_prose, tuple(fences), focus)

    @cached_property
    def features(self) -> Features:
        """Tokens of :attr:`focus_lowered`, computed once and shared by every family."""
        return Features.of(self.focus_lowered)


_EMPTY = Scope()  # immutable, and its features are those of "": one shared instance


@dataclass(frozen=True)
class RequestView:
    """What the signal families see of a request.

    Attributes:
        last: The last user turn (or the completions prompt), bounded.
        context: Earlier turns (user, assistant, tool), bounded, newest first.
        system: System/developer prompt, bounded.
        image_parts: Image parts anywhere in the conversation.
        video_parts: Video parts anywhere in the conversation.
        audio_parts: Audio parts anywhere in the conversation.
        tool_names: Names of the tool/function definitions (lower-case).
        thinking: The client asked for thinking (``enable_thinking`` / ``reasoning_effort``).
        scanned_chars: Total characters handed to the scanners (for tests of the bound).
    """

    last: Scope = field(default_factory=Scope)
    context: Scope = field(default_factory=Scope)
    system: Scope = field(default_factory=Scope)
    image_parts: int = 0
    video_parts: int = 0
    audio_parts: int = 0
    tool_names: tuple[str, ...] = ()
    thinking: bool = False
    scanned_chars: int = 0


def bound(text: str, head: int, tail: int) -> str:
    """Keep the first ``head`` and last ``tail`` characters of ``text``."""
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[len(text) - tail:]


def view_of(request: RequestFacts | Mapping[str, Any], *, head_chars: int = DEFAULT_HEAD_CHARS,
            tail_chars: int = DEFAULT_TAIL_CHARS, context_chars: int = DEFAULT_CONTEXT_CHARS,
            system_chars: int = DEFAULT_SYSTEM_CHARS) -> RequestView:
    """Build the bounded :class:`RequestView` of a request.

    Args:
        request: The request's :class:`~serve.router.facts.RequestFacts` (a raw chat or completions body is
            read into facts first, for tests and tools).
        head_chars: Characters kept from the start of the last user turn.
        tail_chars: Characters kept from the end of the last user turn.
        context_chars: Total characters kept from earlier turns (newest first).
        system_chars: Characters kept from the start of the system prompt(s).

    Returns:
        The request view.
    """
    facts = request if isinstance(request, RequestFacts) else facts_of(request)
    turns = facts.turns
    last = ""
    context_parts: list[str] = []
    system_parts: list[str] = []
    if facts.templated:
        budget = context_chars
        for i in range(len(turns) - 1, -1, -1):
            turn = turns[i]
            if i == facts.last_user:
                last = bound(turn.text, head_chars, tail_chars)
            elif turn.role in SYSTEM_ROLES:
                system_parts.append(turn.text[:system_chars])
            elif budget > 0 and turn.text:
                piece = turn.text[len(turn.text) - budget:] if len(turn.text) > budget else turn.text
                budget -= len(piece)
                context_parts.append(piece)
    elif turns:
        last = bound(turns[0].text, head_chars, tail_chars)
    system = "\n".join(reversed(system_parts))[:system_chars]
    context = "\n".join(context_parts)
    return RequestView(
        last=Scope.of(last), context=Scope.of(context), system=Scope.of(system),
        image_parts=facts.images, video_parts=facts.videos, audio_parts=facts.audio,
        tool_names=facts.tool_names, thinking=facts.thinking_hint,
        scanned_chars=len(last) + len(context) + len(system),
    )
