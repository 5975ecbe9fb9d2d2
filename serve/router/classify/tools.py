"""Tool-definition signals: a hint, never a task by itself.

Tools whose names look like code execution or repository access lean towards code (0.8); calculator-like
tools lean towards math (0.6). Both stay below the decision threshold (1.0) on their own, so a tool-using chat
with no other evidence stays general. The detail carries only the category and the count, not tool names.
"""

from __future__ import annotations

import re

from .extract import RequestView
from .types import Signal, SignalContext

CODE_TOOL_WEIGHT = 0.8
MATH_TOOL_WEIGHT = 0.6

_CODE_TOOL = re.compile(
    r"python|code|exec|bash|shell|terminal|sql|query_db|git|repo|file|compile|run_tests?|lint|jupyter|notebook|"
    r"kubectl|docker|interpreter|sandbox")
_MATH_TOOL = re.compile(r"calc|math|wolfram|sympy|solve|equation|arithmetic|compute")


class ToolSignals:
    """Looks at the names of the request's tool definitions."""

    name = "tools"
    decides = False

    def detect(self, view: RequestView, ctx: SignalContext | None = None) -> list[Signal]:
        """Return tool hints for ``view`` (empty without tools)."""
        if not view.tool_names:
            return []
        code = sum(1 for n in view.tool_names if _CODE_TOOL.search(n))
        maths = sum(1 for n in view.tool_names if _MATH_TOOL.search(n))
        out = [Signal(self.name, "general", 0.0, f"tools({len(view.tool_names)})")]
        if code:
            out.append(Signal(self.name, "code", CODE_TOOL_WEIGHT, f"code tools({code})"))
        if maths:
            out.append(Signal(self.name, "math", MATH_TOOL_WEIGHT, f"math tools({maths})"))
        return out
