"""Environment-variable and home expansion for paths in configs, and telling local paths from hub ids."""

from __future__ import annotations

import os
import re

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def expand_vars(value: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (an empty VAR takes the default, as in the shell).

    Args:
        value: The string to expand.

    Returns:
        The expanded string.

    Raises:
        ValueError: ``${VAR}`` without a default and VAR is not set.
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        current = os.environ.get(name)
        if default is not None:
            return current if current else default
        if current is None:
            raise ValueError(f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
        return current

    return _VAR_RE.sub(repl, value)


def expand_path(value: str) -> str:
    """Expand variables, then ``~``.

    Args:
        value: A path or hub id, possibly with ``${VAR}`` and ``~``.

    Returns:
        The expanded value.
    """
    return os.path.expanduser(expand_vars(value))


def looks_local(value: str) -> bool:
    """Whether an (expanded) model path names a local directory rather than a hub id.

    ``org/name`` is a hub id unless such a directory exists; absolute, ``./``, ``../`` and deeper paths are local.

    Args:
        value: The expanded model path.
    """
    if value.startswith(("/", "./", "../", "~")) or value in (".", ".."):
        return True
    if _HUB_ID_RE.match(value):
        return os.path.isdir(value)
    return True
