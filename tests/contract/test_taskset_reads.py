"""Reads over many task sets on every backend: a window of days, the run leases (live and
left by a dead holder), and the two changes the dashboard asks for (forget a set's
failures so that they are retried, reset one set)."""

from __future__ import annotations

import os

import pytest

import jobledger
from tests._child import Channel, Child
from tests.backends.postgres._pg import until

DAYS = ("2025-01-18", "2025-01-19", "2025-01-20")


def _fill(state: jobledger.JobState) -> None:
    for account in ("a", "b"):
        for day in DAYS:
            state.taskset(account, "t", ["x", "y"], date=day).mark_done("x")


def test_records_reads_a_window_of_days(make_state):
    state = make_state()
    _fill(state)
    got = state.records(since="2025-01-19", until="2025-01-19")
    assert [r.key for r in got] == [
        jobledger.TaskSetKey("a", "t", "2025-01-19"),
        jobledger.TaskSetKey("b", "t", "2025-01-19"),
    ]
    assert [r.date for r in state.records("b", since="2025-01-19")] == list(DAYS[1:])
    assert [r.date for r in state.records("a", until="2025-01-18")] == ["2025-01-18"]
    assert len(state.records()) == 6
    assert state.records(since="2025-01-20", until="2025-01-18") == []
    assert got[0].completed == ["x"] and got[0].remaining == ["y"]


def test_records_refuses_a_bound_that_is_no_date(make_state):
    with pytest.raises(jobledger.ConfigError, match="until"):
        make_state().records(until="yesterday")


def test_leases_names_a_live_holder_and_none_once_released(make_state):
    state = make_state()
    state.taskset("a", "t", ["x"], date=DAYS[0]).mark_done("x")
    assert state.leases() == []
    other = make_state()  # another process, as far as the lease can tell
    with other.taskset("a", "t", ["x"], date=DAYS[0]) as ts:
        [lease] = state.leases()
        assert lease.key == ts.key
        assert lease.alive
        assert lease.holder.pid == os.getpid()
    assert state.leases() == []


def _holder(make_state, account: str):
    def run(ch: Channel) -> None:
        with make_state().taskset(account, "t", ["x", "y"], date=DAYS[0]) as ts:
            ts.mark_done("x")
            ch.send("held")
            ch.recv()  # stays alive until killed

    return run


def test_a_lease_left_by_a_killed_holder_is_listed_dead(make_state):
    state = make_state()
    with Child(_holder(make_state, "a")) as child:
        child.expect("held")
        [lease] = state.leases()
        assert lease.alive and lease.holder.pid == child.pid
        child.kill()
    until(lambda: not state.leases()[0].alive, 20, "the killed holder's lease seen dead")
    [lease] = state.leases()
    assert lease.key == jobledger.TaskSetKey("a", "t", DAYS[0])
    assert lease.holder.pid == child.pid
    assert state.holder(lease.key) is None
    # A read: the dead holder's lease is still there to be seen.
    assert len(state.leases()) == 1
    # The set's next run takes the lease; once it is given back none is left.
    with state.taskset("a", "t", date=DAYS[0]) as ts:
        assert ts.remaining == ["y"]
    assert state.leases() == []


def test_retry_failed_forgets_the_failures_of_tasks_not_completed(make_state):
    state = make_state()
    ts = state.taskset("a", "t", ["x", "y", "z"])
    ts.mark_failed("x", "boom")
    ts.mark_failed("z", "bang")
    ts.mark_failed("y", "first")
    ts.mark_done("y")
    assert list(make_state().taskset("a", "t").pending(retry_failed=False)) == []
    assert make_state().taskset("a", "t").retry_failed() == ["x", "z"]
    again = make_state().taskset("a", "t")
    assert again.failed == {}
    assert list(again.pending(retry_failed=False)) == ["x", "z"]
    assert again.completed == ["y"]
    assert again.retry_failed() == []


def test_retry_failed_is_refused_while_another_process_runs_the_set(make_state):
    state = make_state()
    state.taskset("a", "t", ["x"]).mark_failed("x", "boom")
    with make_state().taskset("a", "t"), pytest.raises(jobledger.AlreadyRunning):
        state.taskset("a", "t").retry_failed()
    assert set(make_state().taskset("a", "t").failed) == {"x"}


def test_retry_failed_inside_the_run_keeps_its_lease(make_state):
    state = make_state()
    with state.taskset("a", "t", ["x"]) as ts:
        ts.mark_failed("x", "boom")
        assert ts.retry_failed() == ["x"]
        assert state.holder(ts.key) is not None


def test_reset_of_one_set(make_state):
    state = make_state()
    _fill(state)
    deleted = state.reset("a", type="t", date=DAYS[1])
    assert deleted == [jobledger.TaskSetKey("a", "t", DAYS[1])]
    assert len(state.keys()) == 5
    assert jobledger.TaskSetKey("a", "t", DAYS[1]) not in state.keys()
    assert state.reset("a", type="other") == []
    assert len(state.reset(date=DAYS[0])) == 2
    with make_state().taskset("b", "t", date=DAYS[2]), pytest.raises(jobledger.AlreadyRunning):
        state.reset("b", type="t", date=DAYS[2])
    assert len(state.keys()) == 3


def test_records_read_again_see_every_change_and_only_it(make_state):
    reader = make_state()
    writer = make_state()  # another process, as far as the reader can tell
    _fill(writer)
    before = {r.key: r for r in reader.records()}
    writer.taskset("a", "t", date=DAYS[0]).mark_done("y")
    writer.reset("b", type="t", date=DAYS[2])
    after = {r.key: r for r in reader.records()}
    changed = jobledger.TaskSetKey("a", "t", DAYS[0])
    assert after[changed].completed == ["x", "y"] and after[changed].remaining == []
    assert set(before) - set(after) == {jobledger.TaskSetKey("b", "t", DAYS[2])}
    for key in set(after) - {changed}:
        assert after[key].to_json() == before[key].to_json()
