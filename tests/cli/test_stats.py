"""_stats.compute_stats and its helpers: exact figures on hand-made records."""

from __future__ import annotations

import datetime as dt

import pytest

from jobledger import Failure, TaskSetRecord
from jobledger._stats import compute_stats, percentile, window

TODAY = dt.date(2025, 1, 20)


def rec(
    date: str,
    account: str = "a@x",
    type: str = "daily-set",
    *,
    completed: list[str] | None = None,
    remaining: list[str] | None = None,
    durations: dict[str, float] | None = None,
    failures: dict[str, Failure] | None = None,
) -> TaskSetRecord:
    return TaskSetRecord(
        date,
        account,
        type,
        completed=completed or [],
        remaining=remaining or [],
        durations=durations or {},
        failures=failures or {},
    )


def test_percentile_interpolates_linearly_like_numpy():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    # rank (5 - 1) * 0.95 = 3.8: 4 + 0.8 * (10 - 4)
    assert percentile(values, 95) == pytest.approx(8.8)
    assert percentile([4.0, 1.0], 50) == 2.5  # unsorted input, even count
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_nonsense():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_window_is_inclusive_of_today():
    assert window(TODAY, 1) == (TODAY, TODAY)
    assert window(TODAY, 7) == (dt.date(2025, 1, 14), TODAY)
    with pytest.raises(ValueError):
        window(TODAY, 0)


def test_records_outside_the_window_are_ignored():
    records = [
        rec("2025-01-13", completed=["t"]),  # 8 days before: outside 7 days
        rec("2025-01-14", completed=["t"]),
        rec("2025-01-21", completed=["t"]),  # the future: outside
    ]
    stats = compute_stats(records, TODAY, 7)
    assert stats.sets == 1
    assert (stats.start, stats.end) == (dt.date(2025, 1, 14), TODAY)


def test_completion_per_account_and_type():
    records = [
        rec("2025-01-20", "a@x", completed=["1", "2"], remaining=["3"]),
        rec("2025-01-19", "a@x", completed=["1", "2", "3"]),
        rec("2025-01-20", "b@x", completed=["1", "2", "3"]),
        rec("2025-01-20", "b@x", "search", remaining=["s"]),
        rec("2025-01-20", "c@x", "empty"),  # planned nothing: neither complete nor counted
    ]
    stats = compute_stats(records, TODAY, 7)
    a, b, c = stats.by_account
    assert (a.name, a.sets, a.complete_sets, a.tasks_done, a.tasks_total) == ("a@x", 2, 1, 5, 6)
    assert a.set_rate == 0.5
    assert a.task_rate == pytest.approx(5 / 6)
    assert (b.sets, b.complete_sets, b.tasks_done, b.tasks_total) == (2, 1, 3, 4)
    assert (c.sets, c.complete_sets, c.task_rate) == (1, 0, None)
    by_type = {t.name: t for t in stats.by_type}
    assert set(by_type) == {"daily-set", "empty", "search"}
    assert (by_type["daily-set"].complete_sets, by_type["daily-set"].sets) == (2, 3)
    assert by_type["daily-set"].task_rate == pytest.approx(8 / 9)
    assert by_type["search"].task_rate == 0.0


def test_failing_tasks_sum_attempts_over_sets_most_first():
    records = [
        rec(
            "2025-01-19",
            "a@x",
            completed=["quiz"],
            failures={"quiz": Failure(2, "old error", "2025-01-19T10:00:00.000Z")},
        ),
        rec(
            "2025-01-20",
            "b@x",
            remaining=["quiz", "poll"],
            failures={
                "quiz": Failure(3, "TimeoutError: late", "2025-01-20T10:00:00.000Z"),
                "poll": Failure(1, "boom", "2025-01-20T09:00:00.000Z"),
            },
        ),
    ]
    stats = compute_stats(records, TODAY, 7)
    quiz, poll = stats.failing
    assert (quiz.task, quiz.type, quiz.attempts, quiz.sets, quiz.unresolved) == (
        "quiz",
        "daily-set",
        5,
        2,
        1,
    )
    assert quiz.last_error == "TimeoutError: late"
    assert quiz.last_failure == "2025-01-20T10:00:00.000Z"
    assert (poll.task, poll.attempts) == ("poll", 1)


def test_duration_median_p95_and_runs():
    records = [
        rec("2025-01-20", "a@x", durations={"quiz": 1.0}),
        rec("2025-01-20", "b@x", durations={"quiz": 3.0}),
        rec("2025-01-20", "c@x", durations={"quiz": 2.0, "poll": 4.0}),
        rec("2025-01-20", "c@x", "other", durations={"quiz": 100.0}),  # another type
    ]
    stats = compute_stats(records, TODAY, 1)
    by_key = {(d.type, d.task): d for d in stats.durations}
    quiz = by_key[("daily-set", "quiz")]
    assert (quiz.runs, quiz.median) == (3, 2.0)
    assert quiz.p95 == pytest.approx(2.9)  # rank 1.9: 2 + 0.9 * (3 - 2)
    assert quiz.trend is None  # one day only
    assert by_key[("other", "quiz")].median == 100.0
    assert [(d.type, d.task) for d in stats.durations] == sorted(by_key)


def test_trend_compares_newer_half_of_days_with_older_half():
    days = {"2025-01-16": 10.0, "2025-01-17": 10.0, "2025-01-19": 12.0, "2025-01-20": 12.0}
    records = [rec(d, durations={"quiz": s}) for d, s in days.items()]
    [quiz] = compute_stats(records, TODAY, 7).durations
    assert quiz.trend == pytest.approx(0.2)
    assert quiz.median == 11.0


def test_trend_with_odd_days_leaves_the_middle_day_out():
    days = {"2025-01-18": 10.0, "2025-01-19": 1000.0, "2025-01-20": 9.5}
    records = [rec(d, durations={"quiz": s}) for d, s in days.items()]
    [quiz] = compute_stats(records, TODAY, 7).durations
    assert quiz.trend == pytest.approx(-0.05)


def test_trend_is_none_when_the_older_median_is_zero():
    records = [
        rec("2025-01-19", durations={"quiz": 0.0}),
        rec("2025-01-20", durations={"quiz": 1.0}),
    ]
    [quiz] = compute_stats(records, TODAY, 7).durations
    assert quiz.trend is None


def test_no_records():
    stats = compute_stats([], TODAY, 7)
    assert stats.sets == 0
    assert stats.by_account == stats.by_type == stats.failing == stats.durations == []
