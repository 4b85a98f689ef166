"""The task-set pages' figures and chart shapes, exactly, on hand-made records (no
browser, no storage)."""

from __future__ import annotations

import datetime as dt

import pytest

from jobledger import LeaseHolder, RunLease, TaskSetKey
from jobledger._stats import percentile
from jobledger._taskset_record import Failure, TaskSetRecord

pytest.importorskip("starlette", reason="the [web] extra is not installed")

from jobledger.web import _svg
from jobledger.web import _taskset_views as views

DAYS = ["2025-01-18", "2025-01-19", "2025-01-20"]
NOW = dt.datetime(2025, 1, 20, 12, 0, tzinfo=dt.timezone.utc)


def rec(
    account: str,
    date: str,
    type: str = "daily",
    completed: tuple[str, ...] = (),
    remaining: tuple[str, ...] = (),
    failures: dict[str, Failure] | None = None,
    durations: dict[str, float] | None = None,
    last_update: str | None = None,
    running: dict[str, object] | None = None,
) -> TaskSetRecord:
    return TaskSetRecord(
        date,
        account,
        type,
        completed=list(completed),
        remaining=list(remaining),
        failures=failures or {},
        durations=durations or {},
        last_update=last_update,
        running=running,
    )


def test_days_between_is_inclusive_and_empty_when_reversed():
    assert views.days_between(dt.date(2025, 1, 30), dt.date(2025, 2, 1)) == [
        "2025-01-30",
        "2025-01-31",
        "2025-02-01",
    ]
    assert views.days_between(dt.date(2025, 2, 1), dt.date(2025, 1, 30)) == []


def test_parse_time_reads_z_offsets_and_naive_times_as_utc():
    assert views.parse_time("2025-01-20T10:30:00.000Z") == dt.datetime(
        2025, 1, 20, 10, 30, tzinfo=dt.timezone.utc
    )
    assert views.parse_time("2025-01-20T10:30:00") == dt.datetime(
        2025, 1, 20, 10, 30, tzinfo=dt.timezone.utc
    )
    assert views.parse_time("2025-01-20T11:30:00+01:00") == dt.datetime(
        2025, 1, 20, 10, 30, tzinfo=dt.timezone.utc
    )
    assert views.parse_time("not a time") is None
    assert views.parse_time(None) is None


def test_heat_map_has_a_cell_per_account_and_day_and_sums_each_days_sets():
    records = [
        rec("b", DAYS[0], completed=("x", "y")),
        rec("b", DAYS[0], type="weekly", completed=("x",), remaining=("y",)),
        rec("a", DAYS[2], completed=("x",), remaining=("y",), failures={"y": Failure(2, "e", "t")}),
        rec("a", "2025-01-10", completed=("x",)),  # outside the window: ignored
        rec("c", DAYS[1]),  # nothing planned
    ]
    heat = views.heat_map(records, DAYS)
    assert heat.accounts == ["a", "b", "c"]
    assert [len(row) for row in heat.rows] == [3, 3, 3]
    b0 = heat.rows[1][0]
    assert (b0.sets, b0.complete_sets, b0.done, b0.total, b0.failed) == (2, 1, 3, 4, 0)
    assert b0.rate == 0.75 and b0.level == "part"
    a2 = heat.rows[0][2]
    assert (a2.done, a2.total, a2.failed, a2.level) == (1, 2, 1, "failed")
    assert heat.rows[0][0].level == "none" and heat.rows[0][0].rate is None
    assert heat.rows[2][1].level == "empty"
    only_daily = views.heat_map(records, DAYS, type="daily")
    assert only_daily.rows[1][0].sets == 1 and only_daily.rows[1][0].level == "done"
    assert views.heat_map(records, DAYS, type="none such").accounts == []


def test_a_failure_completed_since_does_not_count_as_failed():
    cell = views.heat_map(
        [rec("a", DAYS[0], completed=("x",), failures={"x": Failure(1, "e", "t")})], DAYS
    ).rows[0][0]
    assert cell.failed == 0 and cell.level == "done"


def test_rates_by_type_per_day_with_none_for_a_day_without_sets():
    records = [
        rec("a", DAYS[0], completed=("x",), remaining=("y",)),
        rec("b", DAYS[0], completed=("x", "y")),
        rec("a", DAYS[2], type="weekly", completed=("x",)),
    ]
    daily, weekly = views.rates_by_type(records, DAYS)
    assert daily.type == "daily" and weekly.type == "weekly"
    day0 = daily.days[0][1]
    assert day0 is not None
    assert (day0.sets, day0.complete_sets, day0.tasks_done, day0.tasks_total) == (2, 1, 3, 4)
    assert day0.task_rate == 0.75
    assert daily.days[1] == (DAYS[1], None) and daily.days[2] == (DAYS[2], None)
    assert [d for d, c in weekly.days if c is not None] == [DAYS[2]]
    assert daily.overall.tasks_done == 3 and daily.overall.sets == 2


def test_most_failing_ranks_by_attempts_and_keeps_the_last_error():
    records = [
        rec("a", DAYS[0], remaining=("x",), failures={"x": Failure(2, "old", "2025-01-18T01:00Z")}),
        rec("b", DAYS[1], remaining=("x",), failures={"x": Failure(1, "new", "2025-01-19T01:00Z")}),
        rec(
            "a", DAYS[1], completed=("y",), failures={"y": Failure(1, "once", "2025-01-19T02:00Z")}
        ),
    ]
    first, second = views.most_failing(records)
    assert (first.task, first.attempts, first.sets, first.unresolved) == ("x", 3, 2, 2)
    assert first.last_error == "new"
    assert (second.task, second.unresolved) == ("y", 0)
    assert len(views.most_failing(records, top=1)) == 1


def test_duration_trends_give_p50_and_p95_per_day():
    records = [
        rec("a", DAYS[0], durations={"x": 1.0}),
        rec("b", DAYS[0], durations={"x": 3.0}),
        rec("c", DAYS[0], durations={"x": 5.0}),
        rec("a", DAYS[2], durations={"x": 10.0, "y": 2.0}),
        rec("a", DAYS[2], type="weekly", durations={"x": 7.0}),
    ]
    x, y = views.duration_trends(records, type="daily")
    assert (x.type, x.task, y.task) == ("daily", "x", "y")
    assert [d.date for d in x.days] == [DAYS[0], DAYS[2]]
    assert x.days[0].p50 == 3.0 and x.days[0].p95 == pytest.approx(percentile([1, 3, 5], 95))
    assert x.days[0].runs == 3 and x.runs == 4
    assert x.days[1].p50 == x.days[1].p95 == 10.0
    assert len(views.duration_trends(records)) == 3


def _lease(account: str, since: str | None, alive: bool = True, pid: int = 42) -> RunLease:
    return RunLease(TaskSetKey(account, "daily", DAYS[2]), LeaseHolder(pid, "host1", since), alive)


def test_runs_name_the_current_task_and_flag_one_running_far_longer_than_usual():
    history = [rec("h", DAYS[0], durations={"y": d}) for d in (10.0, 20.0, 30.0)]
    usual = percentile([10.0, 20.0, 30.0], 95)
    records = {
        lease.key: rec(
            lease.key.account,
            DAYS[2],
            completed=("x",),
            remaining=("y", "z"),
            last_update=saved,
        )
        for lease, saved in (
            (_lease("slow", "2025-01-20T11:00:00Z"), "2025-01-20T11:50:00.000Z"),
            (_lease("fine", "2025-01-20T11:00:00Z"), "2025-01-20T11:59:30.000Z"),
        )
    }
    leases = [_lease("slow", "2025-01-20T11:00:00Z"), _lease("fine", "2025-01-20T11:00:00Z")]
    fine, slow = views.runs(leases, records, history, NOW)
    assert slow.key.account == "slow" and slow.alive
    assert slow.task == "y"
    assert slow.running_for == 3600.0
    assert slow.task_for == 600.0  # since the last save, later than the lease
    assert slow.usual == pytest.approx(usual)
    assert (slow.done, slow.total) == (1, 3)
    assert slow.stuck is not None and "task y has run 10m00s" in slow.stuck
    assert fine.task_for == 30.0 and fine.stuck is None


def test_a_short_task_is_not_stuck_before_the_floor():
    history = [rec("h", DAYS[0], durations={"y": 1.0})]
    lease = _lease("a", "2025-01-20T11:59:00Z")
    records = {lease.key: rec("a", DAYS[2], remaining=("y",))}
    [run] = views.runs([lease], records, history, NOW)
    assert run.task_for == 60.0 and run.stuck is None  # 60 times usual, but not past 60 s
    [run] = views.runs([lease], records, history, NOW, floor=30.0)
    assert run.stuck is not None


def test_a_dead_holder_with_tasks_left_is_stuck_and_without_is_not():
    dead = _lease("a", "2025-01-20T11:00:00Z", alive=False, pid=777)
    done = _lease("b", "2025-01-20T11:00:00Z", alive=False)
    records = {
        dead.key: rec("a", DAYS[2], completed=("x",), remaining=("y",)),
        done.key: rec("b", DAYS[2], completed=("x",)),
    }
    one, two = views.runs([done, dead], records, [], NOW)
    assert one.key.account == "a" and not one.alive
    assert one.stuck is not None and "pid 777 on host1" in one.stuck and "1 of 2 tasks" in one.stuck
    assert two.stuck is None and two.task is None


def test_the_task_the_record_names_as_running_is_the_current_one():
    lease = _lease("a", None)
    record = rec("a", DAYS[2], remaining=("y", "z"), running={"task": "z"})
    [run] = views.runs([lease], {lease.key: record}, [], NOW)
    assert run.task == "z"
    assert run.running_for is None and run.task_for is None and run.stuck is None


def test_a_lease_without_its_record_is_shown_without_a_task():
    lease = _lease("gone", "2025-01-20T11:00:00Z")
    [run] = views.runs([lease], {}, [], NOW)
    assert (run.task, run.done, run.total, run.stuck) == (None, 0, 0, None)


def test_bar_chart_draws_a_mark_per_value_and_none_for_a_missing_one():
    chart = _svg.bar_chart([("a", 0.5, "A"), ("b", None, "B"), ("c", 1.0, "C"), ("d", 0.0, "D")])
    assert [b.title for b in chart.bars] == ["A", "C", "D"]
    half, full, zero = chart.bars
    assert full.height == pytest.approx(2 * half.height)
    assert full.y < half.y and zero.height == 1.0  # a zero stays visible as a line
    assert all(b.y + b.height <= chart.baseline + 1 for b in chart.bars)
    assert len(chart.labels) == 4


def test_line_chart_draws_a_point_per_value_scaled_to_the_largest():
    chart = _svg.line_chart(
        DAYS, [("p50", "#00f", {DAYS[0]: 1.0, DAYS[2]: 2.0}), ("p95", "#f00", {DAYS[2]: 4.0})]
    )
    p50, p95 = chart.series
    assert len(p50.points) == 2 and len(p95.points) == 1
    assert p95.points[0][1] < p50.points[1][1] < p50.points[0][1]  # higher value, higher up
    assert p50.points[1][0] == p95.points[0][0]  # the same day, the same x
    assert p95.points[0][2] == f"p95 {DAYS[2]}: 4.00s"
    assert chart.top_label == "4.00s"


def test_heat_grid_has_a_rect_per_cell_with_its_level():
    heat = views.heat_map([rec("a", DAYS[0], completed=("x",)), rec("b", DAYS[1])], DAYS)
    grid = _svg.heat_grid(heat, size=10, left=100)
    assert len(grid.cells) == 6
    assert [c.level for c in grid.cells] == ["done", "none", "none", "none", "empty", "none"]
    assert grid.cells[0].fill == _svg.HEAT_FILLS["done"]
    assert grid.cells[4].x == 110 and grid.cells[4].y == grid.cells[0].y + 10
    assert grid.cells[1].title == f"a {DAYS[1]}: no set"
    assert [a for _, a in grid.rows] == ["a", "b"]
