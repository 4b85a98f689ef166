"""PostgreSQL backends across threads and processes: leases, lost updates, dead workers.

Children are forked (tests/_child.py) and talk over pipes; the parent never sleeps
to synchronise. Where it must wait for the server's view to change (a lease running out)
it polls the database in a bounded loop.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from tests.backends.postgres._pg import require_psycopg, until

require_psycopg()

import jobledger  # noqa: E402
from jobledger import JobQueue, JobState, JobStatus  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests._child import Channel, Child  # noqa: E402

KEY = jobledger.TaskSetKey("a@x.com", "daily-set", "2025-01-20")


def _state(url: str) -> JobState:
    return JobState(url=url, timezone="UTC", durability="flush")


def _racer(url: str) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        ts = _state(url).taskset(KEY.account, KEY.type, ["x"], date=KEY.date)
        chan.send("ready")
        assert chan.recv() == "go"
        try:
            ts.acquire(wait=False)
        except jobledger.AlreadyRunning as exc:
            chan.send(f"lost {exc.holder.pid}")
            assert chan.recv() == "retry"
            start = time.monotonic()
            ts.acquire(wait=30.0)
            chan.send(f"got-after {time.monotonic() - start:.3f}")
            ts.mark_done("x")
            ts.release()
            chan.send("done")
            return
        chan.send("won")
        chan.recv()  # blocks until killed

    return target


def test_two_processes_race_for_a_lease_and_a_killed_holder_frees_it(pg_url):
    children = [Child(_racer(pg_url)) for _ in range(2)]
    try:
        for c in children:
            c.read_until("ready")
        for c in children:
            c.send("go")
        outcomes = {}
        for c in children:
            text = c.readline()
            while text is not None and not text.startswith(("won", "lost")):
                text = c.readline()
            outcomes[c.pid] = text
        winner = next(c for c in children if outcomes[c.pid] == "won")
        loser = next(c for c in children if c is not winner)
        assert outcomes[loser.pid] == f"lost {winner.pid}", (outcomes, loser.errors)

        state = _state(pg_url)
        holder = state.holder(KEY)  # takes no lock: the winner keeps holding
        assert holder is not None and holder.pid == winner.pid and holder.host
        assert state.holder(KEY) == holder

        winner.kill()
        loser.send("retry")
        # Got within its bounded wait: the server frees a dead session's advisory lock as
        # soon as it sees the connection close (how fast is for bench/, not for tests).
        loser.read_until("got-after ")
        loser.read_until("done")
        loser.check()
        assert state.holder(KEY) is None
        assert state.taskset(KEY.account, KEY.type, date=KEY.date).completed == ["x"]
        state.backend.close()
    finally:
        for c in children:
            if c.status is None:
                c.kill()


def test_concurrent_mark_done_from_8_threads_loses_nothing(pg_url):
    tasks = [f"t{i}" for i in range(240)]
    _state(pg_url).taskset("a", "t", tasks, date=KEY.date)
    # A state (so a connection and a TaskSet) per thread: they contend on the row lock,
    # as separate processes would, instead of on one TaskSet's thread lock.
    states = [_state(pg_url) for _ in range(8)]
    sets = [s.taskset("a", "t", date=KEY.date) for s in states]
    barrier = threading.Barrier(len(sets))
    errors: list[BaseException] = []

    def work(ts: jobledger.TaskSet, part: list[str]) -> None:
        try:
            barrier.wait()
            for task in part:
                ts.mark_done(task)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(ts, tasks[i :: len(sets)])) for i, ts in enumerate(sets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    reopened = _state(pg_url).taskset("a", "t", date=KEY.date)
    assert sorted(reopened.completed) == sorted(tasks)
    assert len(reopened.completed) == len(tasks)
    assert reopened.remaining == []
    for s in states:
        s.backend.close()


def _marker(url: str, tasks: list[str]) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        ts = _state(url).taskset("a", "t", date=KEY.date)
        chan.send("ready")
        assert chan.recv() == "go"
        for task in tasks:
            ts.mark_done(task)
        chan.send("done")

    return target


def test_concurrent_mark_done_from_processes_loses_nothing(pg_url):
    tasks = [f"t{i}" for i in range(120)]
    _state(pg_url).taskset("a", "t", tasks, date=KEY.date)
    children = [Child(_marker(pg_url, tasks[i::3])) for i in range(3)]
    for c in children:
        c.read_until("ready")
    for c in children:
        c.send("go")
    for c in children:
        c.read_until("done")
        c.check()
    reopened = _state(pg_url).taskset("a", "t", date=KEY.date)
    assert sorted(reopened.completed) == sorted(tasks)
    assert reopened.remaining == []


LEASE = 60.0  # long: a killed worker stays "alive" until the test expires its lease itself


def _short_lease(url: str) -> JobQueue:
    return JobQueue(
        durability="flush",
        backend=PostgresJobBackend(url, fsync=False, worker_lease=LEASE, heartbeat=0.2),
    )


def _claimer(url: str) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        queue = _short_lease(url)
        job = queue.claim()
        assert job is not None
        chan.send(f"claimed {job.job_id} {job.worker}")
        chan.recv()  # blocks until killed

    return target


def test_a_killed_workers_job_is_recovered_by_another_process_after_its_lease(pg_url):
    queue = _short_lease(pg_url)
    queue.enqueue({"type": "T"}, job_id="victim")
    queue.enqueue({"type": "T"}, job_id="next", priority=5)
    queue.close()  # nothing of the parent's is alive while the child forks
    child = Child(_claimer(pg_url))
    job_id, worker = child.read_until("claimed ").split()
    assert job_id == "next"
    child.kill()
    # As if its machine had vanished: the server cannot tell yet that its session is gone,
    # so only the lease tells (a killed process's ended session is seen at once, see
    # test_session_liveness.py). A row without a lock key is left to its lease.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE jobledger_workers SET lock_key = NULL WHERE worker = %s", (worker,))

    observer = _short_lease(pg_url)
    backend = observer.backend
    # Its lease has not run out yet: the job is not taken from a worker presumed alive.
    assert backend.worker_alive(worker)
    assert observer.recover() == []
    assert observer.get("next").status is JobStatus.RUNNING

    # Time passes with no heartbeat from the dead worker: its lease runs out. (Set in the
    # database rather than waited for, so the test does not depend on timing.)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobledger_workers SET lease_until = now() - interval '1 second'"
            " WHERE worker = %s",
            (worker,),
        )
    assert not backend.worker_alive(worker)
    [recovered] = observer.recover()
    assert recovered.job_id == "next" and recovered.status is JobStatus.QUEUED
    assert "died" in recovered.error_message
    again = observer.claim()
    assert again.job_id == "next" and again.attempts == 2  # recovered jobs come first
    observer.complete("next", "ok")
    assert observer.claim().job_id == "victim"
    assert worker not in observer.live_workers()
    observer.close()


def _lease_until(url: str, worker: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_until FROM jobledger_workers WHERE worker = %s", (worker,)
        ).fetchone()
    return row[0] if row else None


def test_the_heartbeat_keeps_a_live_worker_alive_past_its_lease(pg_url):
    queue = JobQueue(
        durability="flush",
        backend=PostgresJobBackend(pg_url, fsync=False, worker_lease=30.0, heartbeat=0.1),
    )
    worker = queue.worker_id
    other = JobQueue(pg_url, durability="flush")
    first = _lease_until(pg_url, worker)
    # The heartbeat pushes the lease forward: wait (bounded) until it has, then again.
    until(lambda: _lease_until(pg_url, worker) > first, 30, "renewed")
    second = _lease_until(pg_url, worker)
    until(lambda: _lease_until(pg_url, worker) > second, 30, "renewed again")
    assert other.backend.worker_alive(worker)
    queue.close()
    assert not other.backend.worker_alive(worker)  # a stopped worker is gone at once
    assert other.live_workers() == []
    other.close()


def test_clear_refuses_while_a_worker_lease_is_live(pg_url):
    worker_queue = JobQueue(pg_url, durability="flush")
    worker_queue.enqueue({"type": "T"})
    assert worker_queue.claim() is not None
    other = JobQueue(pg_url, durability="flush")
    with pytest.raises(jobledger.JobLedgerError, match="alive"):
        other.backend.clear()
    worker_queue.close()
    assert other.clear() == 1
    assert other.counts()["Running"] == 0
    other.close()


def test_fork_does_not_share_the_parents_connection(pg_url):
    state = _state(pg_url)
    ts = state.taskset("a", "t", ["x", "y"], date=KEY.date)

    def target(chan: Channel) -> None:
        ts.mark_done("x")  # the child reconnects instead of using the parent's socket
        chan.send(f"pid {os.getpid()}")

    child = Child(target)
    child.read_until("pid ")
    child.check()
    ts.mark_done("y")  # the parent's connection still works
    assert sorted(_state(pg_url).taskset("a", "t", date=KEY.date).completed) == ["x", "y"]
    state.backend.close()
