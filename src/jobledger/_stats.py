"""Statistics over stored task sets: completion rates, failing tasks, durations and trends.

Pure functions over ``list[TaskSetRecord]``: nothing here reads files or the clock, so the
figures can be unit-tested exactly and rendered by any front end (the CLI's ``stats``, the
dashboard's task-set pages).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ._taskset_record import TaskSetRecord

__all__ = [
    "Completion",
    "DayDurations",
    "DurationStats",
    "FailingTask",
    "Stats",
    "completion",
    "compute_stats",
    "daily_durations",
    "duration_stats",
    "failing_tasks",
    "percentile",
    "window",
]


@dataclass(frozen=True)
class Completion:
    """How complete the task sets of one group (an account or a type) are."""

    name: str
    sets: int
    complete_sets: int
    tasks_done: int
    tasks_total: int

    @property
    def set_rate(self) -> float | None:
        """Fraction of sets fully completed (0..1), or None when there are no sets."""
        return self.complete_sets / self.sets if self.sets else None

    @property
    def task_rate(self) -> float | None:
        """Fraction of planned tasks completed (0..1), or None when none were planned."""
        return self.tasks_done / self.tasks_total if self.tasks_total else None


@dataclass(frozen=True)
class FailingTask:
    """A task that failed at least once in the window, over every account."""

    type: str
    task: str
    attempts: int
    """Failed attempts summed over every set (account and day)."""
    sets: int
    """Sets in which it failed at least once."""
    unresolved: int
    """Of those sets, how many still have it not completed."""
    last_error: str
    last_failure: str


@dataclass(frozen=True)
class DurationStats:
    """How long one task's successful runs took, in seconds, and where that is heading."""

    type: str
    task: str
    runs: int
    median: float
    p95: float
    trend: float | None
    """Relative change of the median, newer half of days vs older half (0.12 = +12%);
    None when the task has durations on fewer than two days or the older median is 0."""


@dataclass(frozen=True)
class Stats:
    """Everything ``compute_stats`` found for the days ``start`` to ``end`` (inclusive)."""

    start: dt.date
    end: dt.date
    sets: int
    by_account: list[Completion]
    by_type: list[Completion]
    failing: list[FailingTask]
    durations: list[DurationStats]


def window(today: dt.date, days: int) -> tuple[dt.date, dt.date]:
    """The first and last date of the ``days`` days ending with ``today`` (inclusive)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return today - dt.timedelta(days=days - 1), today


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile``'s default; ``percentile(v, 50)`` is the
    median. Raises ValueError on an empty sequence or a ``q`` outside 0..100.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def completion(
    records: Iterable[TaskSetRecord], group: Callable[[TaskSetRecord], str]
) -> list[Completion]:
    """Sets and planned tasks, complete and in all, per group (``lambda r: r.type``),
    sorted by the group's name."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for rec in records:
        c = counts[group(rec)]
        done = len(rec.completed)
        total = done + len(rec.remaining)
        c[0] += 1
        # The same rule as TaskSet.is_complete: nothing left and something done.
        c[1] += 1 if done and not rec.remaining else 0
        c[2] += done
        c[3] += total
    return [Completion(name, *c) for name, c in sorted(counts.items())]


def failing_tasks(records: Iterable[TaskSetRecord]) -> list[FailingTask]:
    """Every task that failed at least once, keyed by (type, task) over every account,
    the most failed attempts first."""
    attempts: dict[tuple[str, str], int] = defaultdict(int)
    sets: dict[tuple[str, str], int] = defaultdict(int)
    unresolved: dict[tuple[str, str], int] = defaultdict(int)
    last: dict[tuple[str, str], tuple[str, str]] = {}
    for rec in records:
        done = set(rec.completed)
        for task, failure in rec.failures.items():
            key = (rec.type, task)
            attempts[key] += failure.attempts
            sets[key] += 1
            unresolved[key] += task not in done
            # ISO 8601 UTC stamps of one format sort as text.
            if key not in last or failure.at >= last[key][0]:
                last[key] = (failure.at, failure.error)
    out = [
        FailingTask(k[0], k[1], attempts[k], sets[k], unresolved[k], last[k][1], last[k][0])
        for k in attempts
    ]
    out.sort(key=lambda f: (-f.attempts, -f.unresolved, f.type, f.task))
    return out


def _trend(by_day: dict[str, list[float]]) -> float | None:
    days = sorted(by_day)
    if len(days) < 2:
        return None
    half = len(days) // 2
    # With an odd number of days the middle one belongs to neither half.
    older = [v for d in days[:half] for v in by_day[d]]
    newer = [v for d in days[len(days) - half :] for v in by_day[d]]
    old = percentile(older, 50)
    if old == 0:
        return None
    return (percentile(newer, 50) - old) / old


def duration_stats(records: Iterable[TaskSetRecord]) -> list[DurationStats]:
    """The successful runs' durations per (type, task), sorted by type and task."""
    samples: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for task, seconds in rec.durations.items():
            samples[(rec.type, task)][rec.date].append(seconds)
    out = []
    for (type_, task), by_day in sorted(samples.items()):
        values = [v for day in by_day.values() for v in day]
        out.append(
            DurationStats(
                type=type_,
                task=task,
                runs=len(values),
                median=percentile(values, 50),
                p95=percentile(values, 95),
                trend=_trend(by_day),
            )
        )
    return out


@dataclass(frozen=True)
class DayDurations:
    """One task's successful runs on one day: how many, their median and 95th percentile."""

    date: str
    runs: int
    p50: float
    p95: float


def daily_durations(
    records: Iterable[TaskSetRecord],
) -> dict[tuple[str, str], list[DayDurations]]:
    """Per (type, task), sorted: its durations' p50 and p95 on each day it has any, the
    days in order (a day without a successful run has no entry)."""
    samples: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for task, seconds in rec.durations.items():
            samples[(rec.type, task)][rec.date].append(seconds)
    return {
        key: [
            DayDurations(day, len(v), percentile(v, 50), percentile(v, 95))
            for day, v in sorted(by_day.items())
        ]
        for key, by_day in sorted(samples.items())
    }


def compute_stats(records: Iterable[TaskSetRecord], today: dt.date, days: int = 7) -> Stats:
    """Statistics of the records dated within the ``days`` days ending with ``today``.

    Records outside that window are ignored, so the whole history can be passed in.
    Completion counts sets and planned tasks per account and per type; failing tasks are
    keyed by (type, task) over every account and sorted by failed attempts, most first;
    durations are those of successful runs, keyed by (type, task), sorted by type and task.
    """
    start, end = window(today, days)
    first, last = start.isoformat(), end.isoformat()
    chosen = [r for r in records if first <= r.date <= last]
    return Stats(
        start=start,
        end=end,
        sets=len(chosen),
        by_account=completion(chosen, lambda r: r.account),
        by_type=completion(chosen, lambda r: r.type),
        failing=failing_tasks(chosen),
        durations=duration_stats(chosen),
    )
