"""Test-session ordering shared by every layer."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the multi-node tests first: their Ray cluster (module-scoped) is stopped before the e2e session
    starts its own stack, so this machine never runs two Ray clusters and their engines at once."""
    items.sort(key=lambda item: 0 if "/tests/multinode/" in str(item.path) else 1)
