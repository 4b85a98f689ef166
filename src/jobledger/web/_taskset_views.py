"""What the dashboard's task-set pages show, computed from records: pure functions.

Nothing here reads storage or the clock: the routes (``_tasksets_pages.py``) read a
window of days once per request (``JobState.records(since=, until=)``) and the leases
(``JobState.leases()``), and hand them here with the time of the request. The figures
that ``jobledger stats`` shows too (completion, failing tasks, durations) come from
``jobledger._stats``, so both front ends count alike.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .._durations import human_seconds
from .._errors import LeaseHolder
from .._stats import (
    Completion,
    DayDurations,
    FailingTask,
    completion,
    daily_durations,
    failing_tasks,
    percentile,
)
from .._taskset_record import RunLease, TaskSetKey, TaskSetRecord

__all__ = [
    "STUCK_FACTOR",
    "STUCK_FLOOR",
    "Cell",
    "HeatMap",
    "Run",
    "TaskDurations",
    "TypeRates",
    "days_between",
    "duration_trends",
    "heat_map",
    "most_failing",
    "parse_time",
    "rates_by_type",
    "runs",
]

#: A live run is stuck when its current task has run this many times its usual
#: duration (the 95th percentile of that task's successful runs in the window) ...
STUCK_FACTOR = 3.0
#: ... and at least this many seconds: a task that usually takes a second is not stuck
#: after four.
STUCK_FLOOR = 60.0


def days_between(first: dt.date, last: dt.date) -> list[str]:
    """The ISO dates from ``first`` to ``last``, inclusive, in order."""
    count = (last - first).days + 1
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(max(count, 0))]


def parse_time(iso: str | None) -> dt.datetime | None:
    """A stored ISO 8601 time (``...Z`` or with an offset; naive read as UTC) as an aware
    datetime, or None when there is none or it cannot be read."""
    if not iso:
        return None
    try:
        moment = dt.datetime.fromisoformat(iso[:-1] + "+00:00" if iso.endswith("Z") else iso)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


# -- the heat map ---------------------------------------------------------------------------


class Cell(NamedTuple):
    """One account's sets on one day: how many, and their tasks done, in all, failed.

    (A named tuple: a heat map of 100 accounts by 30 days makes 3,000 of them a page.)"""

    account: str
    date: str
    sets: int = 0
    complete_sets: int = 0
    done: int = 0
    total: int = 0
    failed: int = 0

    @property
    def rate(self) -> float | None:
        """Tasks completed of those planned (0..1); None when nothing was planned."""
        return self.done / self.total if self.total else None

    @property
    def level(self) -> str:
        """The cell's shade: ``none`` (no set), ``empty`` (nothing planned), ``failed``
        (a task failed and is not completed), ``done`` (every set complete), else
        ``part`` ."""
        if not self.sets:
            return "none"
        if not self.total:
            return "empty"
        if self.failed:
            return "failed"
        if self.complete_sets == self.sets:
            return "done"
        return "part"


@dataclass(frozen=True)
class HeatMap:
    """Accounts (rows) by days (columns): ``rows[i][j]`` is ``accounts[i]`` on ``days[j]``."""

    days: list[str]
    accounts: list[str]
    rows: list[list[Cell]]


def _failed_count(record: TaskSetRecord) -> int:
    if not record.failures:
        return 0
    done = set(record.completed)
    return sum(1 for task in record.failures if task not in done)


def heat_map(
    records: Iterable[TaskSetRecord], days: Sequence[str], type: str | None = None
) -> HeatMap:
    """The completion of each account on each of ``days`` (of one ``type``, or all).

    Every account with a set among those days has a row, and every row a cell per day
    (a day without a set is a cell with ``sets == 0``)."""
    wanted = set(days)
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for rec in records:
        if rec.date not in wanted or (type is not None and rec.type != type):
            continue
        s = sums[(rec.account, rec.date)]
        done = len(rec.completed)
        s[0] += 1
        s[1] += 1 if done and not rec.remaining else 0  # TaskSet.is_complete's rule
        s[2] += done
        s[3] += done + len(rec.remaining)
        s[4] += _failed_count(rec)
    accounts = sorted({account for account, _ in sums})
    rows = [
        [
            Cell(account, day, *sums[(account, day)])
            if (account, day) in sums
            else Cell(account, day)
            for day in days
        ]
        for account in accounts
    ]
    return HeatMap(list(days), accounts, rows)


# -- completion per type over days ----------------------------------------------------------


@dataclass(frozen=True)
class TypeRates:
    """One type's completion on each day of the window (None: no set that day)."""

    type: str
    days: list[tuple[str, Completion | None]]

    @property
    def overall(self) -> Completion:
        """The whole window's sets and tasks of this type."""
        found = [c for _, c in self.days if c is not None]
        return Completion(
            self.type,
            sum(c.sets for c in found),
            sum(c.complete_sets for c in found),
            sum(c.tasks_done for c in found),
            sum(c.tasks_total for c in found),
        )


def rates_by_type(records: Iterable[TaskSetRecord], days: Sequence[str]) -> list[TypeRates]:
    """Per type (sorted), its completion on each of ``days``, counted as ``stats`` counts."""
    wanted = set(days)
    by_day: dict[str, list[TaskSetRecord]] = defaultdict(list)
    for rec in records:
        if rec.date in wanted:
            by_day[rec.date].append(rec)
    found: dict[str, dict[str, Completion]] = defaultdict(dict)
    for day, recs in by_day.items():
        for c in completion(recs, lambda r: r.type):
            found[c.name][day] = c
    return [
        TypeRates(type_, [(day, per_day.get(day)) for day in days])
        for type_, per_day in sorted(found.items())
    ]


# -- failing tasks --------------------------------------------------------------------------


def most_failing(records: Iterable[TaskSetRecord], top: int = 20) -> list[FailingTask]:
    """The ``top`` tasks with the most failed attempts, as ``stats`` ranks them."""
    return failing_tasks(records)[:top]


# -- durations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDurations:
    """One task's successful runs per day: p50 and p95 (a day without runs is absent)."""

    type: str
    task: str
    days: list[DayDurations]

    @property
    def runs(self) -> int:
        """Successful runs with a duration, over the window."""
        return sum(d.runs for d in self.days)


def duration_trends(
    records: Iterable[TaskSetRecord], type: str | None = None
) -> list[TaskDurations]:
    """Per (type, task), sorted: the p50 and p95 of its durations on each day."""
    chosen = (r for r in records if type is None or r.type == type)
    return [
        TaskDurations(type_, task, days) for (type_, task), days in daily_durations(chosen).items()
    ]


# -- leases and stuck runs ------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A task set's run lease and what its run is doing, or was doing when it died."""

    key: TaskSetKey
    holder: LeaseHolder
    alive: bool
    task: str | None
    """The task running now: the one the record names as running, else the first one
    remaining (tasks run in planned order); None when nothing remains."""
    running_for: float | None
    """Seconds since the lease was taken (None: its time is unknown)."""
    task_for: float | None
    """Seconds the current task has run: since the lease was taken or the set was last
    saved (a task's end is saved), whichever is later."""
    usual: float | None
    """The 95th percentile of the task's successful runs in the window, if it has any."""
    done: int
    total: int
    stuck: str | None
    """Why the run looks stuck, or None."""


def _usual(history: Iterable[TaskSetRecord]) -> dict[tuple[str, str], float]:
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for rec in history:
        for task, seconds in rec.durations.items():
            samples[(rec.type, task)].append(seconds)
    return {key: percentile(values, 95) for key, values in samples.items()}


def _current_task(record: TaskSetRecord | None) -> str | None:
    if record is None:
        return None
    named = record.running.get("task") if record.running else None
    if isinstance(named, str) and named not in record.completed:
        return named
    return record.remaining[0] if record.remaining else None


def runs(
    leases: Iterable[RunLease],
    records: Mapping[TaskSetKey, TaskSetRecord],
    history: Iterable[TaskSetRecord],
    now: dt.datetime,
    *,
    factor: float = STUCK_FACTOR,
    floor: float = STUCK_FLOOR,
) -> list[Run]:
    """Each lease as a :class:`Run`, stuck ones with their reason, in key order.

    A run is stuck when its holder died with tasks remaining, or when it lives and its
    current task has run more than ``factor`` times that task's usual duration and at
    least ``floor`` seconds. ``records`` holds the leased sets' records, ``history`` the
    records whose durations say what is usual."""
    usual = _usual(history)
    out = []
    for lease in sorted(leases, key=lambda lease: lease.key):
        record = records.get(lease.key)
        since = parse_time(lease.holder.since)
        saved = parse_time(record.last_update) if record is not None else None
        running_for = (now - since).total_seconds() if since is not None else None
        start = max(t for t in (since, saved) if t is not None) if since or saved else None
        task_for = (now - start).total_seconds() if start is not None else None
        task = _current_task(record)
        typical = usual.get((lease.key.type, task)) if task is not None else None
        done = len(record.completed) if record is not None else 0
        total = done + (len(record.remaining) if record is not None else 0)
        stuck = None
        if not lease.alive and task is not None:
            stuck = (
                f"its holder ({lease.holder.describe()}) died with {total - done} of "
                f"{total} tasks left; the next run of the set takes them up"
            )
        elif lease.alive and task is not None and typical is not None and task_for is not None:
            limit = max(factor * typical, floor)
            if task_for > limit:
                stuck = (
                    f"task {task} has run {human_seconds(task_for)}, more than {factor:g} "
                    f"times its usual {human_seconds(typical)} (p95 of its runs)"
                )
        out.append(
            Run(
                lease.key,
                lease.holder,
                lease.alive,
                task,
                running_for,
                task_for,
                typical,
                done,
                total,
                stuck,
            )
        )
    return out
