"""PostgreSQL: a worker's liveness from its heartbeat session, not only from its lease.

A worker's heartbeat session holds an advisory lock on the worker's key, which the server
drops when the session ends: a killed worker's Running jobs go back to the queue at the
next claim of any live worker, ahead of every Queued job, while its lease is still in the
future. The lease still rules alone for what a session cannot tell (a worker whose
session lives but whose lease ran out is recovered), and fencing still refuses a late
result. Children are forked (tests/_child.py); the parent waits for the server to end a
dead session by blocking on that very lock, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

from jobledger import JobConflict, JobQueue, JobStatus  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests._child import Channel, Child  # noqa: E402

LEASE = 60.0  # long: whatever is recovered here is recovered before any lease runs out
RUNNING = 50


def _queue(url: str, heartbeat: float = 0.2) -> JobQueue:
    # recover_every: no periodic recovery, so only the claim's own check can recover.
    return JobQueue(
        durability="flush",
        recover_every=3600,
        backend=PostgresJobBackend(url, fsync=False, worker_lease=LEASE, heartbeat=heartbeat),
    )


def _worker(url: str, limit: int, heartbeat: float = 0.2) -> Callable[[Channel], None]:
    """A child that claims ``limit`` jobs, then completes them when told ("complete")."""

    def target(chan: Channel) -> None:
        queue = _queue(url, heartbeat)
        jobs = queue.claim_many(limit)
        assert len(jobs) == limit
        chan.send(f"claimed {jobs[0].worker}")
        chan.recv()
        outcomes = []
        for job in jobs:
            try:
                queue.complete(job.job_id, "late")
                outcomes.append("done")
            except JobConflict:
                outcomes.append("refused")
        chan.send("outcomes " + " ".join(outcomes))
        chan.recv()  # stays alive until killed

    return target


def _key(conn: psycopg.Connection[Any], worker: str) -> int:
    row = conn.execute(
        "SELECT lock_key FROM jobledger_workers WHERE worker = %s", (worker,)
    ).fetchone()
    assert row is not None and row[0] is not None, "the worker's row names its lock"
    return int(row[0])


def _wait_session_ended(url: str, key: int) -> None:
    """Block until no session holds the worker's lock (the server ended its session)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _lease_in_future(url: str, worker: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_until > clock_timestamp() FROM jobledger_workers WHERE worker = %s",
            (worker,),
        ).fetchone()
    return bool(row and row[0])


def test_a_killed_workers_running_jobs_are_served_first_at_the_next_claim(pg_url):
    queue = _queue(pg_url)
    queue.enqueue_many([{"type": "T"}] * RUNNING, job_ids=[f"r{i:02}" for i in range(RUNNING)])
    queue.close()  # nothing of the parent's is alive while the child forks
    child = Child(_worker(pg_url, RUNNING))
    worker = child.read_until("claimed ")

    observer = _queue(pg_url)
    # Queued jobs that would come first by priority, were the dead worker's not recovered.
    observer.enqueue_many([{"type": "T"}] * 20, priority=9, job_ids=[f"q{i:02}" for i in range(20)])
    assert len(observer.list(JobStatus.RUNNING)) == RUNNING
    with psycopg.connect(pg_url, autocommit=True) as conn:
        key = _key(conn, worker)
    child.kill()
    _wait_session_ended(pg_url, key)
    assert _lease_in_future(pg_url, worker)  # the lease alone would not recover them yet

    first = observer.claim_many(10)  # the first claim after the death
    served = [j.job_id for j in first]
    while batch := observer.claim_many(10):
        served += [j.job_id for j in batch]
    assert served[:RUNNING] == [f"r{i:02}" for i in range(RUNNING)]
    assert sorted(served[RUNNING:]) == [f"q{i:02}" for i in range(20)]
    assert all(observer.get(f"r{i:02}").attempts == 2 for i in range(RUNNING))
    assert worker not in observer.live_workers()  # its row is forgotten with it
    observer.close()


def test_a_live_worker_keeps_its_jobs_until_its_lease_runs_out(pg_url):
    queue = _queue(pg_url)
    queue.enqueue_many([{"type": "T"}] * 5, job_ids=[f"r{i}" for i in range(5)])
    queue.close()
    with Child(_worker(pg_url, 5)) as child:
        worker = child.read_until("claimed ")
        observer = _queue(pg_url)
        observer.enqueue({"type": "T"}, job_id="queued", priority=9)
        # Its session holds its lock: neither a claim nor recover takes its jobs.
        assert observer.recover() == []
        assert [j.job_id for j in observer.claim_many(10)] == ["queued"]
        assert len(observer.list(JobStatus.RUNNING)) == 6

        # Its jobs' leases run out (a hung worker whose session lives): the lease still
        # rules on its own, and they are recovered; its late results are refused.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE jobledger_jobs SET lease_until = now() - interval '1 second'"
                " WHERE worker = %s",
                (worker,),
            )
        recovered = observer.recover()
        assert sorted(r.job_id for r in recovered) == [f"r{i}" for i in range(5)]
        child.send("complete")
        assert child.read_until("outcomes ").split() == ["refused"] * 5
        assert observer.get("r0").status is JobStatus.QUEUED
        observer.close()


def test_a_worker_that_lost_its_session_cannot_complete_a_job_another_took(pg_url):
    queue = _queue(pg_url)
    queue.enqueue({"type": "T"}, job_id="job")
    queue.close()
    # A heartbeat too slow to reconnect during the test: the session stays lost.
    with Child(_worker(pg_url, 1, heartbeat=3600)) as child:
        worker = child.read_until("claimed ")
        observer = _queue(pg_url)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            key = _key(conn, worker)
            [ended] = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objsubid = 1 AND granted"
                " AND classid::bigint = (%s::bigint >> 32) & 4294967295"
                " AND objid::bigint = %s::bigint & 4294967295",
                (key, key),
            ).fetchall()
            assert ended[0]
        _wait_session_ended(pg_url, key)
        assert _lease_in_future(pg_url, worker)

        [taken] = observer.claim_many(10)
        assert taken.job_id == "job" and taken.worker == observer.worker_id
        assert taken.attempts == 2
        child.send("complete")  # the first worker still runs, and finishes late
        assert child.read_until("outcomes ").split() == ["refused"]
        observer.complete("job", "mine")
        assert observer.get("job").result == "mine"
        observer.close()


def _one_job_of_a_killed_worker(pg_url):
    """A worker that claimed the one job "job", SIGKILLed, its session ended: its id."""
    queue = _queue(pg_url)
    queue.enqueue({"type": "T"}, job_id="job")
    queue.close()
    child = Child(_worker(pg_url, 1))
    worker = child.read_until("claimed ")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        key = _key(conn, worker)
    child.kill()
    _wait_session_ended(pg_url, key)
    return worker


def test_a_worker_row_without_a_lock_key_is_left_to_its_lease(pg_url):
    """An older worker (no key in its row): its session cannot be told, only its lease."""
    worker = _one_job_of_a_killed_worker(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE jobledger_workers SET lock_key = NULL WHERE worker = %s", (worker,))
    observer = _queue(pg_url)
    assert observer.claim_many(10) == []
    assert observer.get("job").status is JobStatus.RUNNING
    observer.close()


def test_a_lock_taken_before_the_server_last_started_is_left_to_its_lease(pg_url):
    """A server restart ends every session, a live worker's too: a key locked before the
    server started says nothing (the lease tells) until the worker's heartbeat locks again.
    The restart is stood in for by moving the row's lock back before the server's start."""
    worker = _one_job_of_a_killed_worker(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobledger_workers SET lock_epoch = pg_postmaster_start_time()"
            " - interval '1 second' WHERE worker = %s",
            (worker,),
        )
    observer = _queue(pg_url)
    assert observer.claim_many(10) == []
    assert observer.recover() == []
    assert observer.get("job").status is JobStatus.RUNNING
    observer.close()
