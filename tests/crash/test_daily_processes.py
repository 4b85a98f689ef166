"""Daily runs across real processes, on every backend.

- A worker process is SIGKILLed in the middle of an account (its third task started, its
  work not done): another worker process recovers the job, takes the set's run lease over
  and resumes at that task; every task's work is done exactly once.
- Four processes enqueue one day's jobs at the same moment: one job per (account, type,
  day) is stored, and each process is handed the same ids.

The workers' handlers report each task on a pipe and wait there for a ``go``: the test
decides where the kill lands by not answering. Nothing sleeps to synchronise.
"""

from __future__ import annotations

import queue as stdqueue
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import jobledger
from jobledger import DailyTask, JobStatus, Worker, daily_run

from .._child import Channel, Child, first_readable, released_together
from ..conftest import QueueFactory

TYPE = "daily-set"
TASKS = ["check-in", "quiz-1", "poll-1", "quiz-2", "search"]
ACCOUNTS = ["alice@example.com", "bob@example.com"]
THREE = [*ACCOUNTS, "carol@example.com"]
DAY = "2025-01-20"
WAIT = 120.0  # seconds: only a bound on a hang, never a synchronisation


def _state(make_queue: QueueFactory, tmp_path: Path) -> jobledger.JobState:
    if make_queue.backend == "files":
        return jobledger.JobState(tmp_path / "state", durability="flush")
    return jobledger.JobState(url=str(make_queue.location), durability="flush")


def _worker(make_queue: QueueFactory, tmp_path: Path) -> Callable[[Channel], None]:
    """A worker process serving the daily run. Each task run says ``start ACCOUNT TASK
    ATTEMPT`` and waits for ``go`` before its work (``work ACCOUNT TASK``); ``stop`` stops
    the worker gracefully, which then says ``stopped``."""

    def target(chan: Channel) -> None:
        goes: stdqueue.Queue[str] = stdqueue.Queue()
        q = jobledger.JobQueue(make_queue.location, durability="flush", recover_every=0.05)

        def handler(t: DailyTask) -> None:
            chan.send(f"start {t.account} {t.task} {t.attempt}")
            if goes.get() != "go":
                raise SystemExit(3)  # the test is gone: leave the task undone
            chan.send(f"work {t.account} {t.task}")

        daily = daily_run(_state(make_queue, tmp_path), q, ACCOUNTS, TYPE, TASKS, handler, at=None)
        worker = Worker(q, daily.handlers, poll_interval=0.02, handle_signals=False)

        def commands() -> None:
            while True:
                try:
                    line = chan.recv()
                except EOFError:
                    line = "stop"
                if line == "stop":
                    goes.put("stop")
                    worker.stop()
                    return
                goes.put(line)

        threading.Thread(target=commands, daemon=True).start()
        chan.send(f"ready {q.worker_id}")
        worker.run()
        chan.send("stopped")

    return target


def test_a_worker_killed_mid_account_is_resumed_by_another_at_the_task_it_stopped(
    make_queue, tmp_path
):
    q = make_queue()
    daily = daily_run(_state(make_queue, tmp_path), q, ACCOUNTS, TYPE, TASKS, print, at=None)
    ids = daily.enqueue_day(DAY)
    work: Counter[tuple[str, str]] = Counter()
    starts: list[tuple[str, str, str, str]] = []  # (worker, account, task, attempt)

    first = Child(_worker(make_queue, tmp_path))
    second: Child | None = None
    try:
        first.read_until("ready ")
        # The first worker runs its account's first two tasks and starts the third: it
        # is killed there, before that task's work, with its set's lease held.
        while True:
            line = first.read_until("")
            kind, account, task, *rest = line.split(" ")
            if kind == "work":
                work[(account, task)] += 1
                continue
            assert kind == "start", line
            starts.append(("first", account, task, rest[0]))
            if task == TASKS[2]:
                killed_account = account
                break
            first.send("go")
        assert first.kill() != 0
        assert [s[2] for s in starts] == TASKS[:3]

        second = Child(_worker(make_queue, tmp_path))
        second.read_until("ready ")
        while sum(work.values()) < len(ACCOUNTS) * len(TASKS):
            assert first_readable([second], WAIT) is second, "the second worker fell silent"
            line = second.read_until("")
            kind, account, task, *rest = line.split(" ")
            if kind == "work":
                work[(account, task)] += 1
            else:
                assert kind == "start", line
                starts.append(("second", account, task, rest[0]))
                second.send("go")
        second.send("stop")
        second.read_until("stopped")
        second.check()
    finally:
        first.close()
        if second is not None:
            second.close()

    assert work == Counter({(a, t): 1 for a in ACCOUNTS for t in TASKS})
    # The killed account resumed at the task the dead worker had started, not earlier,
    # and that task counts as never tried: SIGKILL records no failure.
    resumed = [(t, n) for who, a, t, n in starts if who == "second" and a == killed_account]
    assert resumed == [(t, "1") for t in TASKS[2:]]
    reader = make_queue()
    for job_id, account in zip(ids, ACCOUNTS, strict=True):
        job = reader.get(job_id)
        assert job.status is JobStatus.COMPLETED, job
        assert job.attempts == (2 if account == killed_account else 1)
        assert job.result["completed"] == TASKS
    state = _state(make_queue, tmp_path)
    for account in ACCOUNTS:
        ts = state.taskset(account, TYPE, date=DAY)
        assert ts.completed == TASKS and ts.failed == {}
    state.close()


def _enqueuer(make_queue: QueueFactory, tmp_path: Path) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        q = jobledger.JobQueue(make_queue.location, durability="flush")
        q.recover()  # opened (and, on PostgreSQL, migrated) before the race
        daily = daily_run(_state(make_queue, tmp_path), q, THREE, TYPE, TASKS, print)
        chan.send("ready")
        assert chan.recv() == "go"
        chan.send("result " + ",".join(daily.enqueue_day(DAY)))

    return target


def test_four_processes_enqueueing_a_day_at_once_store_one_job_per_account(make_queue, tmp_path):
    make_queue().recover()  # the schema exists before the children race for it
    results = released_together([_enqueuer(make_queue, tmp_path) for _ in range(4)])
    accounts = THREE
    want = [f"daily:{TYPE}:{a}:{DAY}" for a in accounts]
    assert results == [",".join(want)] * 4
    q = make_queue()
    jobs = q.list()
    assert sorted(j.job_id for j in jobs) == sorted(want)
    assert sorted(j.raw["account"] for j in jobs) == sorted(accounts)
    assert all(j.unique_key == j.job_id and j.status is JobStatus.QUEUED for j in jobs)
    assert [s.name for s in q.schedules()] == [f"daily:{TYPE}"]  # stored once, by all four
