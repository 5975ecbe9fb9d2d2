"""Workload data model: conversations of turns, and token-length distributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

TASKS: tuple[str, ...] = ("code", "math", "general", "reasoning", "vision")


@dataclass
class Turn:
    """One user message and what to ask for in reply.

    Attributes:
        prompt: The user text.
        prompt_len: Exact token count of ``prompt`` by the workload's tokenizer (content only, no template).
        output_len: ``max_tokens`` to request (exact when the run sets ignore_eos/min_tokens), or None.
        image_url: Optional image (data URL) sent with the prompt (chat only).
    """

    prompt: str
    prompt_len: int
    output_len: int | None
    image_url: str | None = None


@dataclass
class Conversation:
    """A unit of arrival: one request, or several turns sent one after the other with the history.

    Attributes:
        index: Position in the workload.
        turns: The user turns; single-turn workloads have one.
        task: The task the workload meant to exercise (code/math/...), or None.
        system: Optional system prompt (shared prefixes go here in chat mode).
        extra_body: Extra JSON fields merged into every request of this conversation.
    """

    index: int
    turns: list[Turn]
    task: str | None = None
    system: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)


class LengthDist(BaseModel):
    """A token-length distribution: fixed, uniform over [low, high], or a clipped normal.

    Parse from strings with :meth:`parse`: ``"128"`` (fixed), ``"64:256"`` (uniform),
    ``"normal:512,128"`` (mean, std; clipped to [1, 8 * mean]).
    """

    kind: Literal["fixed", "uniform", "normal"] = "fixed"
    value: int = Field(default=128, ge=0, description="fixed length, or the mean for normal")
    low: int = Field(default=0, ge=0, description="uniform lower bound (inclusive)")
    high: int = Field(default=0, ge=0, description="uniform upper bound (inclusive)")
    std: float = Field(default=0.0, ge=0, description="normal standard deviation")

    @model_validator(mode="after")
    def _check(self) -> LengthDist:
        if self.kind == "uniform" and self.high < self.low:
            raise ValueError("uniform length range needs low <= high")
        return self

    @classmethod
    def parse(cls, text: str | int, range_ratio: float = 0.0) -> LengthDist:
        """Parse ``"N"``, ``"LOW:HIGH"`` or ``"normal:MEAN,STD"``.

        Args:
            text: The spec.
            range_ratio: vLLM's ``--random-range-ratio``: a fixed N becomes uniform over
                [N * (1 - r), N * (1 + r)].
        """
        s = str(text).strip()
        if s.startswith("normal:"):
            mean, std = s.removeprefix("normal:").split(",")
            return cls(kind="normal", value=int(mean), std=float(std))
        if ":" in s:
            lo, hi = s.split(":")
            return cls(kind="uniform", low=int(lo), high=int(hi))
        n = int(s)
        if range_ratio > 0:
            return cls(
                kind="uniform", low=max(1, int(n * (1 - range_ratio))), high=int(n * (1 + range_ratio))
            )
        return cls(kind="fixed", value=n)

    def sample(self, n: int, rng: np.random.Generator) -> list[int]:
        """Draw ``n`` lengths."""
        if self.kind == "fixed":
            return [self.value] * n
        if self.kind == "uniform":
            return [int(x) for x in rng.integers(self.low, self.high + 1, size=n)]
        raw = rng.normal(self.value, self.std, size=n)
        return [int(x) for x in np.clip(np.rint(raw), 1, max(1, 8 * self.value))]

    def describe(self) -> str:
        """Short human form, e.g. ``128`` or ``64:256``."""
        if self.kind == "fixed":
            return str(self.value)
        if self.kind == "uniform":
            return f"{self.low}:{self.high}"
        return f"normal:{self.value},{self.std:g}"
