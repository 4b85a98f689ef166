"""Shared fixtures: an injectable clock and a JobState per backend; the ``--slow`` flag.

Tests marked ``slow`` (long crash campaigns, bigger model runs) are skipped unless
``pytest --slow`` (or ``JOBLEDGER_SLOW=1``) asks for them: CI runs the rest in minutes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator

import pytest

import jobledger
from tests.postgres._pg import pg_database, pg_url  # noqa: F401 (fixtures)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run the long variants (tests marked slow); same as JOBLEDGER_SLOW=1",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: long variants, skipped unless --slow (or JOBLEDGER_SLOW=1)"
    )
    if config.getoption("--slow"):
        os.environ["JOBLEDGER_SLOW"] = "1"  # for tests that size themselves by it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("JOBLEDGER_SLOW"):
        return
    skip = pytest.mark.skip(reason="a long variant: run with --slow (or JOBLEDGER_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class FakeClock:
    """A clock that moves only when told to: no sleeping in tests."""

    def __init__(self, start: str = "2025-01-20T10:30:00+00:00") -> None:
        self._now = dt.datetime.fromisoformat(start)
        self._mono = 1000.0

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, **delta: float) -> None:
        step = dt.timedelta(**delta)
        self._now += step
        self._mono += step.total_seconds()

    def set(self, iso: str) -> None:
        self._now = dt.datetime.fromisoformat(iso)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


BACKENDS = ["files", "postgres"]


@pytest.fixture(params=BACKENDS)
def make_state(request: pytest.FixtureRequest, tmp_path, clock):
    """A factory of JobStates on one backend's storage; each call opens it anew."""
    opened: list[jobledger.JobState] = []

    def make(**kwargs) -> jobledger.JobState:
        kwargs.setdefault("timezone", "UTC")
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("durability", "flush")
        if request.param == "files":
            return jobledger.JobState(tmp_path / "state", **kwargs)
        if request.param == "postgres":
            state = jobledger.JobState(url=request.getfixturevalue("pg_url"), **kwargs)
            opened.append(state)
            return state
        raise AssertionError(request.param)

    yield make
    for state in opened:  # JobState has no close(): give back the connections now
        state.backend.close()


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def caplog_jl(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """caplog capturing the jobledger logger at INFO."""
    caplog.set_level(logging.INFO, logger="jobledger")
    yield caplog
