"""The signal families the classifier runs, in order: the one place to add a new kind of evidence.

Each entry builds one family from the classifier's options (:class:`FamilyOptions`). Families that decide
(``decides = True``) come first, in priority order: the task header beats image parts. See
:mod:`.base` for the contract, and retrain the learned model after adding rules (``bench/route_eval/train.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import CONTEXT_WEIGHT, SYSTEM_WEIGHT, SignalFamily
from .code import CodeSignals
from .extract import RequestView
from .general import GeneralSignals
from .header import HEADER_NAME, HeaderSignal
from .maths import MathSignals
from .modality import ModalitySignals
from .reasoning import ReasoningSignals
from .tools import ToolSignals
from .types import Signal, SignalContext

#: Weight of an explicit request for thinking (``enable_thinking`` / reasoning effort) towards reasoning.
THINKING_WEIGHT = 0.8


@dataclass(frozen=True)
class FamilyOptions:
    """The classifier options a family may read.

    Attributes:
        context_weight: Multiplier for evidence in earlier turns.
        system_weight: Multiplier for evidence in the system prompt.
        header_name: The task header.
    """

    context_weight: float = CONTEXT_WEIGHT
    system_weight: float = SYSTEM_WEIGHT
    header_name: str = HEADER_NAME


class ThinkingSignal:
    """The client asked for thinking: a hint towards reasoning, below the threshold on its own."""

    name = "thinking"
    decides = False

    def detect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
        """One signal when thinking was requested and ``reasoning`` is a task."""
        if view.thinking and "reasoning" in ctx.tasks:
            return [Signal(self.name, "reasoning", THINKING_WEIGHT, "thinking requested")]
        return []


#: The families, in the order they run (deciding ones first, by priority).
SIGNAL_FAMILIES: tuple[Callable[[FamilyOptions], SignalFamily], ...] = (
    lambda o: HeaderSignal(o.header_name),
    lambda o: ModalitySignals(),
    lambda o: ToolSignals(),
    lambda o: CodeSignals(o.context_weight, o.system_weight),
    lambda o: MathSignals(o.context_weight, o.system_weight),
    lambda o: ReasoningSignals(o.context_weight, o.system_weight),
    lambda o: GeneralSignals(o.context_weight, o.system_weight),
    lambda o: ThinkingSignal(),
)
