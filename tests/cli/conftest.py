"""A prepared state folder for the CLI tests, and a runner bound to it.

The CLI's "today" is the real date (in UTC, from the config), so the sets are built around
the real date with a fake clock parked on it: no sleeping, stable timestamps.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import jobledger
from jobledger.cli import cli
from tests.conftest import FakeClock

TASKS = ["daily-check-in", "quiz-1", "poll-1", "quiz-2", "search-desktop"]
ALICE = "alice@example.com"
BOB = "bob@example.com"


@dataclass
class Prepared:
    """The folder, its config file, the dates used and a way to run the CLI on it."""

    dir: Path
    config: Path
    today: dt.date
    clock: FakeClock

    def state(self) -> jobledger.JobState:
        return jobledger.JobState(self.dir, timezone="UTC", durability="flush", clock=self.clock)

    def day(self, days_ago: int) -> str:
        return (self.today - dt.timedelta(days=days_ago)).isoformat()

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--config", str(self.config), *args], input=input)


def _run_tasks(
    ts: jobledger.TaskSet, clock: FakeClock, seconds: dict[str, float], fail: dict[str, int]
) -> None:
    for task in list(ts.pending()):
        for _ in range(fail.get(task, 0)):
            ts.mark_failed(task, TimeoutError("page did not load"))
        if task in seconds:
            with ts.task(task):
                clock.advance(seconds=seconds[task])


def fill(state: jobledger.JobState, clock: FakeClock, today: dt.date) -> None:
    """The six sets every CLI test reads, in ``state`` (a folder or a database): today
    alice 3/5 with quiz-2 failed twice and a search at 12/30, bob 5/5; 3 days ago alice
    and bob complete; 10 days ago an old alice set."""

    def day(days_ago: int) -> str:
        return (today - dt.timedelta(days=days_ago)).isoformat()

    clock.set(f"{day(10)}T09:00:00+00:00")
    with state.taskset(ALICE, "daily-set", TASKS, date=day(10)) as ts:
        _run_tasks(ts, clock, {"daily-check-in": 1.0}, {})

    clock.set(f"{day(3)}T09:00:00+00:00")
    for account in (ALICE, BOB):
        with state.taskset(account, "daily-set", TASKS, date=day(3)) as ts:
            _run_tasks(ts, clock, dict.fromkeys(TASKS, 2.0), {"quiz-2": 1})

    clock.set(f"{today.isoformat()}T10:30:00+00:00")
    with state.taskset(ALICE, "daily-set", TASKS) as ts:
        _run_tasks(ts, clock, {"daily-check-in": 3.0, "quiz-1": 3.0, "poll-1": 3.0}, {"quiz-2": 2})
    with state.taskset(BOB, "daily-set", TASKS) as ts:
        _run_tasks(ts, clock, dict.fromkeys(TASKS, 3.0), {})
    with state.taskset(ALICE, "desktop-search") as ts:
        ts.progress("search", 12, 30)


def build(root: Path) -> Prepared:
    """The folder of :func:`fill`'s sets, with its config file."""
    today = dt.datetime.now(dt.timezone.utc).date()
    clock = FakeClock(f"{today.isoformat()}T10:30:00+00:00")
    config = root / "config.json"
    state_dir = root / "state"
    config.write_text(json.dumps({"jobState": {"dir": str(state_dir), "timezone": "UTC"}}))
    p = Prepared(state_dir, config, today, clock)
    fill(p.state(), clock, today)
    return p


@pytest.fixture
def prepared(tmp_path: Path) -> Prepared:
    return build(tmp_path)


@pytest.fixture(autouse=True)
def _quiet_logger() -> Iterator[None]:
    """`--verbose` adds a handler on the runner's stderr; drop it after each test."""
    logger = logging.getLogger("jobledger")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
