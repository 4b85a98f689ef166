"""Daily runs across accounts (``jobledger.daily_run``), on every backend: the schedule's
fan-out, one job per (account, type, day) on the schedule's day, each account's tasks run
once under its set's run lease, failures retried at the failed task, a set held by a live
process snoozed, a dead holder's lease taken over.

The queue's clock is the injected FakeClock; the processes that hold a lease are forked
children told what to do down a pipe. Nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from pathlib import Path

import pytest

import jobledger
from jobledger import (
    ConfigError,
    DailyTask,
    InvalidNameError,
    JobStatus,
    Worker,
    daily_run,
)

from ._child import Channel, Child
from .conftest import QueueFactory

TYPE = "daily-set"
TASKS = ["check-in", "quiz-1", "poll-1", "quiz-2"]
ACCOUNTS = ["alice@example.com", "bob@example.com", "carol@example.com"]


def _state(make_queue: QueueFactory, tmp_path: Path, clock) -> jobledger.JobState:
    """A JobState on the queue's backend: a folder beside it, or its database schema."""
    if make_queue.backend == "files":
        return jobledger.JobState(tmp_path / "state", durability="flush", clock=clock)
    state = jobledger.JobState(url=str(make_queue.location), durability="flush", clock=clock)
    make_queue.opened.append(state)  # type: ignore[arg-type]  # closed with the queues
    return state


class Calls:
    """A handler recording each task run as (account, task, day, attempt)."""

    def __init__(self, fail_once: set[tuple[str, str]] | None = None) -> None:
        self.runs: list[tuple[str, str, str, int]] = []
        self._fail_once = set(fail_once or ())

    def __call__(self, t: DailyTask) -> None:
        self.runs.append((t.account, t.task, t.day.isoformat(), t.attempt))
        assert t.type == TYPE and t.taskset.account == t.account and t.job.job_id
        if (t.account, t.task) in self._fail_once:
            self._fail_once.discard((t.account, t.task))
            raise RuntimeError(f"{t.task} of {t.account} broke")

    def done(self) -> Counter[tuple[str, str, str]]:
        return Counter((a, task, day) for a, task, day, _ in self.runs)


def _serve(q: jobledger.JobQueue, daily: jobledger.DailyRun) -> Worker:
    worker = Worker(q, daily.handlers, handle_signals=False, poll_interval=0.01)
    worker.run(until_empty=True)
    return worker


def test_the_schedule_fans_out_one_job_per_account_on_the_schedules_day(
    make_queue, tmp_path, clock
):
    # 00:30 in Paris is 23:30 UTC the evening before: the day is Paris's, not UTC's.
    clock.set("2025-01-20T22:00:00+00:00")
    q = make_queue(retry_delay=0)
    calls = Calls()
    daily = daily_run(
        _state(make_queue, tmp_path, clock),
        q,
        ACCOUNTS,
        TYPE,
        TASKS,
        calls,
        at="00:30",
        timezone="Europe/Paris",
    )
    assert daily.schedule is not None and daily.schedule.cron == "30 0 * * *"
    assert [s.name for s in q.schedules()] == ["daily:daily-set"]
    assert q.enqueue_due() == []
    clock.set("2025-01-20T23:30:00+00:00")
    [fan_out] = q.enqueue_due()
    assert fan_out == "daily:daily-set@2025-01-20T23:30:00.000Z"
    _serve(q, daily)
    ids = [f"daily:daily-set:{a}:2025-01-21" for a in ACCOUNTS]
    assert q.get(fan_out).result == {"day": "2025-01-21", "jobs": ids}
    for account, job_id in zip(ACCOUNTS, ids, strict=True):
        job = q.get(job_id)
        assert job.status is JobStatus.COMPLETED and job.unique_key == job_id
        assert job.type == "daily:daily-set" and job.raw["account"] == account
        assert job.result == {"account": account, "day": "2025-01-21", "completed": TASKS}
    assert calls.done() == Counter({(a, t, "2025-01-21"): 1 for a in ACCOUNTS for t in TASKS})
    state = _state(make_queue, tmp_path, clock)
    for account in ACCOUNTS:
        ts = state.taskset(account, TYPE, date="2025-01-21")
        assert ts.completed == TASKS and ts.is_complete

    # The day's jobs again (a fan-out run by hand, enqueue_day from a script): the
    # finished jobs are returned, none stored or run again.
    assert daily.enqueue_day("2025-01-21") == ids
    q.enqueue({"type": "daily:daily-set:fan-out", "accounts": ACCOUNTS, "day": "2025-01-21"})
    _serve(q, daily)
    assert q.counts()["Completed"] == 1 + len(ACCOUNTS) + 1
    assert calls.done() == Counter({(a, t, "2025-01-21"): 1 for a in ACCOUNTS for t in TASKS})

    # The next day's occurrence: a new job per account, for the new day.
    clock.set("2025-01-21T23:30:00+00:00")
    assert q.enqueue_due() == ["daily:daily-set@2025-01-21T23:30:00.000Z"]
    _serve(q, daily)
    assert sorted({day for _, _, day, _ in calls.runs}) == ["2025-01-21", "2025-01-22"]
    assert len(calls.runs) == 2 * len(ACCOUNTS) * len(TASKS)


def test_a_failed_task_fails_the_job_and_its_retry_resumes_at_that_task(
    make_queue, tmp_path, clock
):
    q = make_queue(retry_delay=0)
    calls = Calls(fail_once={("bob@example.com", "poll-1")})
    state = _state(make_queue, tmp_path, clock)
    daily = daily_run(state, q, ACCOUNTS, TYPE, TASKS, calls, at=None)
    ids = daily.enqueue_day()
    assert daily.schedule is None and q.schedules() == []
    _serve(q, daily)
    bob = q.get(ids[1])
    assert bob.status is JobStatus.COMPLETED and bob.attempts == 2
    bob_runs = [(task, attempt) for a, task, _, attempt in calls.runs if a == "bob@example.com"]
    # check-in and quiz-1 were done before the failure: not run again by the retry.
    assert bob_runs == [("check-in", 1), ("quiz-1", 1), ("poll-1", 1), ("poll-1", 2), ("quiz-2", 1)]
    ts = state.taskset("bob@example.com", TYPE, date=daily.today())
    assert ts.is_complete and ts.failed == {}
    assert ts.record.failures["poll-1"].error == "RuntimeError: poll-1 of bob@example.com broke"
    for other in (ids[0], ids[2]):  # the other accounts never noticed
        assert q.get(other).attempts == 1


def test_a_task_that_fails_every_attempt_fails_the_job_for_good_with_the_set_recording_it(
    make_queue, tmp_path, clock
):
    q = make_queue(retry_delay=0)
    state = _state(make_queue, tmp_path, clock)

    def broken(t: DailyTask) -> None:
        if t.task == "quiz-1":
            raise ValueError("the quiz page is gone")

    daily = daily_run(state, q, ["alice@example.com"], TYPE, TASKS, broken, at=None, max_attempts=2)
    [job_id] = daily.enqueue_day()
    _serve(q, daily)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 2
    assert "the quiz page is gone" in (job.error_message or "")
    ts = state.taskset("alice@example.com", TYPE, date=daily.today())
    assert ts.completed == ["check-in"]
    assert ts.failed["quiz-1"].attempts == 2


def test_a_task_that_snoozes_snoozes_the_job_and_is_no_failure(make_queue, tmp_path, clock):
    q = make_queue()
    state = _state(make_queue, tmp_path, clock)
    seen: list[tuple[str, int]] = []

    def busy_once(t: DailyTask) -> None:
        seen.append((t.task, t.attempt))
        if t.task == "poll-1" and len(seen) == 3:
            raise jobledger.Snooze(300)  # the service says: come back in 5 minutes

    daily = daily_run(state, q, ["alice@example.com"], TYPE, TASKS, busy_once, at=None)
    [job_id] = daily.enqueue_day()
    _serve(q, daily)
    job = q.get(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    ts = state.taskset("alice@example.com", TYPE, date=daily.today())
    assert ts.completed == ["check-in", "quiz-1"] and ts.record.failures == {}
    clock.advance(seconds=300)
    _serve(q, daily)
    assert q.get(job_id).status is JobStatus.COMPLETED
    assert seen == [("check-in", 1), ("quiz-1", 1), ("poll-1", 1), ("poll-1", 1), ("quiz-2", 1)]


def test_a_worker_runs_many_accounts_at_once_each_under_its_own_lease(make_queue, tmp_path, clock):
    q = make_queue()
    state = _state(make_queue, tmp_path, clock)
    together = threading.Barrier(len(ACCOUNTS), timeout=60)  # a bound on a hang only
    calls = Calls()

    def meet(t: DailyTask) -> None:
        if t.task == TASKS[0]:
            together.wait()  # passes only when every account's job is running at once
        calls(t)

    daily = daily_run(state, q, ACCOUNTS, TYPE, TASKS, meet, at=None)
    ids = daily.enqueue_day()
    worker = Worker(q, daily.handlers, concurrency=len(ACCOUNTS), handle_signals=False)
    worker.run(until_empty=True)
    assert [q.get(i).status for i in ids] == [JobStatus.COMPLETED] * len(ACCOUNTS)
    assert calls.done() == Counter(
        {(a, t, daily.today().isoformat()): 1 for a in ACCOUNTS for t in TASKS}
    )


def test_tasks_may_differ_per_account(make_queue, tmp_path, clock):
    q = make_queue()
    calls = Calls()
    plans = {"alice@example.com": ["check-in"], "bob@example.com": ["check-in", "quiz-1"]}
    daily = daily_run(
        _state(make_queue, tmp_path, clock), q, list(plans), TYPE, plans.__getitem__, calls, at=None
    )
    daily.enqueue_day("2025-01-20")
    _serve(q, daily)
    assert sorted((a, t) for a, t, _, _ in calls.runs) == [
        ("alice@example.com", "check-in"),
        ("bob@example.com", "check-in"),
        ("bob@example.com", "quiz-1"),
    ]


def _lease_holder(make_queue: QueueFactory, tmp_path: Path, account: str, day: str):
    """A child that opens ``account``'s set for ``day``, takes its run lease, says
    ``held`` and keeps it until told ``release`` (or killed)."""

    def target(chan: Channel) -> None:
        if make_queue.backend == "files":
            state = jobledger.JobState(tmp_path / "state", durability="flush")
        else:
            state = jobledger.JobState(url=str(make_queue.location), durability="flush")
        with state.taskset(account, TYPE, date=day):
            chan.send("held")
            assert chan.recv() == "release"
        chan.send("released")

    return target


def test_a_set_held_by_a_live_process_snoozes_its_job_uncounted(make_queue, tmp_path, clock):
    q = make_queue()
    calls = Calls()
    state = _state(make_queue, tmp_path, clock)
    daily = daily_run(
        # lease_wait: the job waits that long for the lease, then gives up (the waiting
        # path of both backends, not only the first try)
        state,
        q,
        ["alice@example.com"],
        TYPE,
        TASKS,
        calls,
        at=None,
        lease_wait=0.2,
        busy_snooze=120,
    )
    day = daily.today().isoformat()
    with Child(_lease_holder(make_queue, tmp_path, "alice@example.com", day)) as holder:
        holder.expect("held")
        [job_id] = daily.enqueue_day()
        worker = _serve(q, daily)
        job = q.get(job_id)
        assert job.status is JobStatus.QUEUED and job.attempts == 0
        assert worker.delayed_left is not None and calls.runs == []
        holder.send("release")
        holder.expect("released")
        holder.check()
    clock.advance(seconds=120)
    _serve(q, daily)
    assert q.get(job_id).status is JobStatus.COMPLETED
    assert [t for _, t, _, _ in calls.runs] == TASKS


def test_a_dead_holders_lease_is_taken_over_by_the_next_run(make_queue, tmp_path, clock):
    """The lease of a process killed with SIGKILL dies with it (an OS lock; a database
    session the server ends): the account job takes it over, waiting at most lease_wait
    for the server to notice the death."""
    q = make_queue()
    calls = Calls()
    state = _state(make_queue, tmp_path, clock)
    daily = daily_run(state, q, ["alice@example.com"], TYPE, TASKS, calls, at=None, lease_wait=30)
    day = daily.today().isoformat()
    holder = Child(_lease_holder(make_queue, tmp_path, "alice@example.com", day))
    try:
        holder.expect("held")
    finally:
        assert holder.kill() != 0
    [job_id] = daily.enqueue_day()
    _serve(q, daily)
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.attempts == 1
    assert [t for _, t, _, _ in calls.runs] == TASKS


def test_names_and_options_are_checked_before_anything_is_stored(make_queue, tmp_path, clock):
    q = make_queue()
    q.recover()  # opened (PostgreSQL: migrated), so that the reads below can look
    state = _state(make_queue, tmp_path, clock)

    def make(**overrides):
        kwargs = {"accounts": ACCOUNTS, "type": TYPE, "tasks": TASKS, **overrides}
        return daily_run(state, q, handler=print, **kwargs)

    with pytest.raises(InvalidNameError, match="account"):
        make(accounts=["alice@example.com", "bad\x00name"])
    with pytest.raises(InvalidNameError, match="task"):
        make(tasks=["check-in", ""])
    with pytest.raises(ConfigError, match="more than once"):
        make(accounts=["a", "b", "a"])
    with pytest.raises(ConfigError, match="list of account names"):
        make(accounts="alice@example.com")
    with pytest.raises(ConfigError, match="at least one account"):
        make(accounts=[])
    with pytest.raises(ConfigError, match="'@'"):
        make(type="daily@set")
    for at in ("7am", "24:00", "07:60", "7:5"):
        with pytest.raises(ConfigError, match="HH:MM"):
            make(at=at)
    with pytest.raises(ConfigError, match="time zone"):
        make(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="catch_up"):
        make(catch_up="some")
    with pytest.raises(ConfigError, match="max_attempts"):
        make(max_attempts=0)
    for bad in ((0, 60.0), (5, 0), (5,), "5/60", (5.5, 60), (5, float("inf"))):
        with pytest.raises(ConfigError, match="rate_limit"):
            make(rate_limit=bad)
    with pytest.raises(ConfigError, match="day"):
        daily_run(state, q, ACCOUNTS, TYPE, TASKS, print, at=None).enqueue_day("20/01/2025")
    assert q.schedules() == [] and q.list() == []
    assert daily_run(state, q, ACCOUNTS, TYPE, TASKS, print, at="7:05").schedule.cron == "5 7 * * *"


def test_the_rate_limit_paces_the_account_jobs_across_accounts(make_queue, tmp_path, clock):
    q = make_queue()
    calls = Calls()
    state = _state(make_queue, tmp_path, clock)
    daily = daily_run(state, q, ACCOUNTS, TYPE, TASKS, calls, at=None, rate_limit=(2, 3600))
    assert q.limits().rates[daily.account_job_type] == jobledger.RateLimit(2, 3600.0)
    daily.enqueue_day()
    _serve(q, daily)  # two accounts start within the hour; the third waits, uncounted
    started = {account for account, *_ in calls.runs}
    assert len(started) == 2
    (waiting,) = set(ACCOUNTS) - started
    job = q.get(daily.job_id(waiting, clock.now().date()))
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    clock.advance(hours=1)
    _serve(q, daily)
    assert calls.done() == Counter(
        (a, task, clock.now().date().isoformat()) for a in ACCOUNTS for task in TASKS
    )


def test_a_fan_out_job_without_a_day_fails_saying_what_it_needs(make_queue, tmp_path, clock):
    q = make_queue(retry_delay=0)
    daily = daily_run(_state(make_queue, tmp_path, clock), q, ACCOUNTS, TYPE, TASKS, print, at=None)
    job_id = q.enqueue({"type": daily.fan_out_job_type, "accounts": ACCOUNTS}, max_attempts=1)
    _serve(q, daily)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and "'day'" in (job.error_message or "")
    assert q.counts()["Queued"] == 0


def test_the_day_of_a_late_job_is_its_own_not_the_day_it_runs(make_queue, tmp_path, clock):
    clock.set("2025-01-20T06:00:00+00:00")
    q = make_queue()
    calls = Calls()
    daily = daily_run(
        _state(make_queue, tmp_path, clock), q, ["alice@example.com"], TYPE, TASKS, calls
    )
    clock.set("2025-01-20T07:00:00+00:00")
    q.enqueue_due()
    clock.advance(hours=20)  # the workers come back the next day
    _serve(q, daily)
    assert {day for _, _, day, _ in calls.runs} == {"2025-01-20"}
    assert daily.today() == dt.date(2025, 1, 21)
