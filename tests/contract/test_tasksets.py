"""The task-set contract: every backend must pass this suite unchanged."""

from __future__ import annotations

import threading

import pytest

import jobledger


def test_plan_and_resume_in_planned_order(make_state):
    ts = make_state().taskset("a@x.com", "daily-set", ["q1", "q2", "q3", "q4"])
    assert ts.remaining == ["q1", "q2", "q3", "q4"]
    ts.mark_done("q3")
    ts.mark_done("q1")
    reopened = make_state().taskset("a@x.com", "daily-set", ["q1", "q2", "q3", "q4"])
    assert reopened.completed == ["q3", "q1"]  # completion order
    assert reopened.remaining == ["q2", "q4"]  # planned order
    assert list(reopened.pending()) == ["q2", "q4"]


def test_planning_again_appends_and_never_forgets_completed(make_state):
    ts = make_state().taskset("a", "t", ["x", "y"])
    ts.mark_done("x")
    again = make_state().taskset("a", "t", ["y", "z"])  # x no longer planned
    assert again.completed == ["x"]
    assert again.remaining == ["y", "z"]
    again.plan(["x", "w", "z"])
    assert again.remaining == ["y", "z", "w"]
    assert make_state().taskset("a", "t").remaining == ["y", "z", "w"]


def test_mark_done_is_idempotent_and_durable(make_state):
    ts = make_state().taskset("a", "t", ["x"])
    ts.mark_done("x")
    ts.mark_done("x")
    assert make_state().taskset("a", "t").completed == ["x"]
    assert ts.is_complete


def test_unplanned_task_can_be_marked_done(make_state):
    ts = make_state().taskset("a", "t", ["x"])
    ts.mark_done("extra")
    assert ts.completed == ["extra"]
    assert ts.remaining == ["x"]
    assert not ts.is_complete


def test_failures_are_counted_and_the_task_stays_remaining(make_state, clock):
    ts = make_state().taskset("a", "t", ["x", "y"])
    ts.mark_failed("x", RuntimeError("network down"))
    clock.advance(minutes=1)
    failure = ts.mark_failed("x", "still down")
    assert failure.attempts == 2
    reopened = make_state().taskset("a", "t")
    assert reopened.failed["x"] == jobledger.Failure(2, "still down", "2025-01-20T10:31:00.000Z")
    assert reopened.remaining == ["x", "y"]
    reopened.mark_done("x")
    assert reopened.failed == {}
    # The failure history stays on record for stats.
    assert reopened.record.failures["x"].attempts == 2


def test_task_block_marks_done_with_duration(make_state, clock):
    ts = make_state().taskset("a", "t", ["x"])
    with ts.task("x") as run:
        assert run == jobledger.TaskRun("x", 1)
        clock.advance(seconds=2.5)
    reopened = make_state().taskset("a", "t")
    assert reopened.completed == ["x"]
    assert reopened.durations["x"] == pytest.approx(2.5)


def test_task_block_records_failure_and_reraises(make_state):
    ts = make_state().taskset("a", "t", ["x"])
    with pytest.raises(ValueError, match="bad"), ts.task("x"):
        raise ValueError("bad")
    assert ts.failed["x"].attempts == 1
    assert ts.failed["x"].error == "ValueError: bad"
    assert ts.remaining == ["x"]


def test_reraise_false_carries_on_past_a_failed_task(make_state):
    ts = make_state().taskset("a", "t", ["x", "y", "z"])
    ran = []
    for task in ts.pending():
        with ts.task(task, reraise=False):
            ran.append(task)
            if task == "y":
                raise RuntimeError("flaky")
    assert ran == ["x", "y", "z"]
    assert ts.completed == ["x", "z"]
    assert ts.remaining == ["y"]
    assert list(ts.pending(retry_failed=False)) == []
    assert list(ts.pending()) == ["y"]


def test_keyboard_interrupt_is_not_a_failure(make_state):
    ts = make_state().taskset("a", "t", ["x"])
    with pytest.raises(KeyboardInterrupt), ts.task("x", reraise=False):
        raise KeyboardInterrupt
    assert ts.failed == {}
    assert ts.remaining == ["x"]


def test_progress_resumes_and_completes(make_state):
    ts = make_state().taskset("a", "search", ["desktop-search"])
    assert ts.progress("desktop-search") is None
    ts.progress("desktop-search", 12, 30)
    reopened = make_state().taskset("a", "search")
    assert reopened.progress("desktop-search") == jobledger.Progress(12, 30)
    assert reopened.remaining == ["desktop-search"]
    reopened.progress("desktop-search", 30, 30)
    assert make_state().taskset("a", "search").completed == ["desktop-search"]


def test_progress_rejects_nonsense(make_state):
    ts = make_state().taskset("a", "t")
    with pytest.raises(ValueError, match="done"):
        ts.progress("x", -1, 3)
    with pytest.raises(ValueError):
        ts.progress("x", 1)


def test_pending_skips_tasks_completed_during_the_loop(make_state, caplog_jl):
    ts = make_state().taskset("a", "t", ["x", "y", "z"])
    ts.mark_done("x")
    seen = []
    for task in ts.pending():
        seen.append(task)
        ts.mark_done("z")  # done out of band, e.g. by another thread
        ts.mark_done(task)
    assert seen == ["y"]
    assert "Skipping completed task: x" in caplog_jl.messages


def test_accounts_and_types_and_dates_are_isolated(make_state):
    state = make_state()
    state.taskset("a", "daily-set", ["x"]).mark_done("x")
    assert state.taskset("b", "daily-set", ["x"]).remaining == ["x"]
    assert state.taskset("a", "other", ["x"]).remaining == ["x"]
    assert state.taskset("a", "daily-set", ["x"], date="2025-01-21").remaining == ["x"]
    keys = make_state().keys()
    assert jobledger.TaskSetKey("a", "daily-set", "2025-01-20") in keys
    assert len(keys) == 4


def test_lease_is_exclusive_and_released(make_state):
    state = make_state()
    with state.taskset("a", "t", ["x"]) as ts:
        assert state.holder(ts.key) is not None
        other = make_state().taskset("a", "t")
        with pytest.raises(jobledger.AlreadyRunning) as info, other:
            pass
        assert info.value.holder.pid is not None
        assert "already running" in str(info.value)
    assert state.holder(ts.key) is None
    with make_state().taskset("a", "t"):
        pass


def test_concurrent_mark_done_from_threads_loses_nothing(make_state):
    tasks = [f"t{i}" for i in range(200)]
    ts = make_state().taskset("a", "t", tasks)
    barrier = threading.Barrier(4)

    def work(part: list[str]) -> None:
        barrier.wait()
        for task in part:
            ts.mark_done(task)

    threads = [threading.Thread(target=work, args=(tasks[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reopened = make_state().taskset("a", "t")
    assert sorted(reopened.completed) == sorted(tasks)
    assert reopened.remaining == []


def test_unknown_keys_survive_a_rewrite(make_state):
    state = make_state()
    ts = state.taskset("a", "t", ["x", "y"])
    record = ts.record
    record.extra["addedByNewerVersion"] = {"k": 1}
    state.backend.update(ts.key, lambda cur: record)
    again = make_state().taskset("a", "t")
    again.mark_done("x")
    assert make_state().taskset("a", "t").record.extra == {"addedByNewerVersion": {"k": 1}}


def test_reset_and_cleanup(make_state, clock):
    state = make_state()
    state.taskset("a", "t", ["x"], date="2025-01-01").mark_done("x")
    state.taskset("a", "t", ["x"]).mark_done("x")
    state.taskset("b", "t", ["x"]).mark_done("x")
    assert state.cleanup(days=7, dry_run=True) == [jobledger.TaskSetKey("a", "t", "2025-01-01")]
    assert len(state.keys()) == 3
    state.cleanup(days=7)
    assert len(state.keys()) == 2
    with state.taskset("b", "t"), pytest.raises(jobledger.AlreadyRunning):
        state.reset("b")
    assert [k.account for k in state.reset("a")] == ["a"]
    assert [k.account for k in state.keys()] == ["b"]
    state.reset()
    assert state.keys() == []


def test_reset_deletes_nothing_while_one_of_the_sets_is_running(make_state):
    state = make_state()
    for day in ("2025-01-01", "2025-01-02", "2025-01-03"):
        state.taskset("a", "t", ["x"], date=day).mark_done("x")
    other = make_state()  # another process, as far as the lease can tell
    with other.taskset("a", "t", date="2025-01-02"):
        with pytest.raises(jobledger.AlreadyRunning):
            state.reset("a")
        assert len(state.keys("a")) == 3  # all or nothing: the others are kept too
    assert len(state.reset("a")) == 3
    assert state.keys("a") == []
