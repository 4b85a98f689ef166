"""Crash tests: the ``slow`` marker for the long variants (run with JOBLEDGER_SLOW=1)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long crash campaigns, skipped unless JOBLEDGER_SLOW=1 is set"
    )
