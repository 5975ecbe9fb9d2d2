"""Logging set-up: plain or JSON lines; prompts and completions are never logged (hash + length only)."""

from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (``key=value`` pairs stay in the message)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(*, json_format: bool = False, level: int = logging.INFO) -> None:
    """Configure the ``serve`` and ``loadtest`` loggers once (idempotent).

    Args:
        json_format: JSON lines instead of plain text.
        level: Log level.
    """
    for name in ("serve", "loadtest"):
        lg = logging.getLogger(name)
        lg.setLevel(level)
        if not any(getattr(h, "_qwen_serve", False) for h in lg.handlers):
            handler = logging.StreamHandler()
            handler._qwen_serve = True  # type: ignore[attr-defined]
            lg.addHandler(handler)
            lg.propagate = False
        for h in lg.handlers:
            if getattr(h, "_qwen_serve", False):
                h.setFormatter(JsonFormatter() if json_format else
                               logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
