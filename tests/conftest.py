"""Shared fixtures: an injectable clock, the one list of backends with a JobState and a
JobQueue factory per backend, a fresh ``@job_type`` registry per test; the ``--slow`` flag.

Tests marked ``slow`` (long crash campaigns, bigger model runs) are skipped unless
``pytest --slow`` (or ``JOBLEDGER_SLOW=1``) asks for them: CI runs the rest in minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobledger
from jobledger import _job_types
from tests.backends.postgres._pg import pg_database, pg_url  # noqa: F401 (fixtures)


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


#: The backends every backend-independent suite runs on: the one list of the test suite
#: (``make_state``, ``make_queue``, the model tests' storage). A test that inspects files
#: on disk is files-only and opens its queue or state folder itself.
BACKENDS = ["files", "postgres"]


@pytest.fixture(autouse=True)
def _fresh_job_types() -> Iterator[None]:
    """``@job_type`` registers in a process-global table: what a test registers is
    forgotten after it, so no test sees another's types (module-level ones stay)."""
    with _job_types.isolated_for_tests():
        yield


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


class QueueFactory:
    """``make_queue(**kwargs)``: a JobQueue on one backend's storage (the same folder or
    database schema on every call, each call opening it anew, as another process would),
    with the fake clock and ``durability="flush"`` unless given. Closed after the test."""

    def __init__(self, backend: str, location: str | Path, clock: FakeClock) -> None:
        self.backend = backend
        #: The folder (files) or the schema's URL (postgres): what the CLI's --dir takes.
        self.location = location
        self._clock = clock
        self.opened: list[jobledger.JobQueue] = []

    def __call__(self, **kwargs: Any) -> jobledger.JobQueue:
        kwargs.setdefault("clock", self._clock)
        kwargs.setdefault("durability", "flush")
        queue = jobledger.JobQueue(self.location, **kwargs)
        self.opened.append(queue)
        return queue

    def document(self, queue: jobledger.JobQueue, job_id: str) -> dict[str, Any]:
        """The job's stored document: its file ``jobs/<id>.json`` on files (read from
        disk), its row's document on PostgreSQL."""
        if self.backend == "files":
            data: dict[str, Any] = json.loads(
                (Path(self.location) / "jobs" / f"{job_id}.json").read_text()
            )
            return data
        record = queue.backend.get(job_id)
        assert record is not None, f"no job {job_id}"
        return record.to_json()


@pytest.fixture(params=BACKENDS)
def make_queue(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock):
    """A :class:`QueueFactory` per backend."""
    if request.param == "files":
        location: str | Path = tmp_path / "queue"
    elif request.param == "postgres":
        location = request.getfixturevalue("pg_url")
    else:  # pragma: no cover
        raise AssertionError(request.param)
    factory = QueueFactory(request.param, location, clock)
    yield factory
    for queue in factory.opened:
        queue.close()


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def caplog_jl(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """caplog capturing the jobledger logger at INFO."""
    caplog.set_level(logging.INFO, logger="jobledger")
    yield caplog
