"""The explicit ``x-qwen-task`` header: the client names the task and, if it is a known task, it wins."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from starlette.datastructures import Headers

from .extract import RequestView
from .types import Signal, SignalContext

HEADER_NAME = "x-qwen-task"


class HeaderSignal:
    """Reads the task override header (case-insensitive name and value)."""

    name = "header"
    decides = True

    def __init__(self, header_name: str = HEADER_NAME) -> None:
        """Create the signal.

        Args:
            header_name: Header to read (compared case-insensitively).
        """
        self.header_name = header_name.lower()

    def detect(self, view: RequestView, ctx: SignalContext) -> list[Signal]:
        """The header's task as a signal, when it names a configured task."""
        found = self.read(ctx.headers, ctx.tasks)
        return [] if found is None else [found]

    def read(self, headers: Mapping[str, str] | None, tasks: Collection[str]) -> Signal | None:
        """Return a header signal if the header names one of ``tasks``.

        Args:
            headers: Request headers (any mapping; names compared case-insensitively).
            tasks: Known task names.

        Returns:
            The signal, or None when the header is absent or names an unknown task (the header's value is
            then ignored and never echoed, since it is client-controlled text).
        """
        if not headers:
            return None
        value = headers.get(self.header_name)
        if value is None and not isinstance(headers, Headers):  # Starlette's headers: get is case-insensitive
            for key, val in headers.items():
                if isinstance(key, str) and key.lower() == self.header_name:
                    value = val
                    break
        if not isinstance(value, str):
            return None
        task = value.strip().lower()
        if task not in tasks:
            return None
        return Signal(self.name, task, 100.0, f"{self.header_name}={task}")
