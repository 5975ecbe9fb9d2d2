"""Modality signals: image or video parts anywhere in the conversation mean vision; audio parts are reported.

A request that carries an image must reach a model that can see it, whatever the text says, so the pipeline
treats a vision signal as decisive (only the header beats it). Audio parts vote for an ``audio`` task when
the classifier has one; otherwise they are reported with weight 0 so the capability check can reject them.
"""

from __future__ import annotations

from .extract import RequestView
from .types import Signal, SignalContext

VISION_WEIGHT = 10.0


class ModalitySignals:
    """Counts media parts."""

    name = "modality"
    decides = True

    def detect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
        """Return vision/audio signals for ``view``.

        Args:
            view: The request view.
            ctx: The configured tasks (audio votes only when an ``audio`` task exists).

        Returns:
            Signals (empty for text-only requests).
        """
        out: list[Signal] = []
        if view.image_parts:
            out.append(Signal(self.name, "vision", VISION_WEIGHT, f"image parts({min(view.image_parts, 99)})"))
        if view.video_parts:
            out.append(Signal(self.name, "vision", VISION_WEIGHT, f"video parts({min(view.video_parts, 99)})"))
        if view.audio_parts:
            weight = VISION_WEIGHT if "audio" in ctx.tasks else 0.0
            out.append(Signal(self.name, "audio", weight, f"audio parts({min(view.audio_parts, 99)})"))
        return out
