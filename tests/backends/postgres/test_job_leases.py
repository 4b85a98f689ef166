"""Every Running job carries a lease: set by its claim, renewed by its worker's heartbeat
(fenced by worker and status), and a job whose lease ran out is recovered by any live
worker even while its worker's own row still reads alive (a hung heartbeat, a partition).

The heartbeat threads here beat once an hour: the tests call a beat themselves, so that
nothing depends on timing. Lease expiry is simulated by moving ``lease_until`` back.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import psycopg  # noqa: E402

from jobledger import JobConflict, JobQueue, JobStatus  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402

LEASE = 30.0


def _queue(url: str) -> JobQueue:
    return JobQueue(
        durability="flush",
        recover_every=0,
        backend=PostgresJobBackend(url, fsync=False, worker_lease=LEASE, heartbeat=3600),
    )


def _lease(url: str, job_id: str) -> dt.datetime | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_until FROM jobledger_jobs WHERE job_id = %s", (job_id,)
        ).fetchone()
    assert row is not None
    return row[0]


def _expire(url: str, job_id: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobledger_jobs SET lease_until = clock_timestamp() - interval '1 second'"
            " WHERE job_id = %s",
            (job_id,),
        )


def _server_now(url: str) -> dt.datetime:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def test_a_claim_sets_the_lease_and_the_heartbeat_renews_it(pg_url):
    a = _queue(pg_url)
    a.enqueue({"type": "T"}, job_id="j")
    before = _server_now(pg_url)
    a.claim()
    first = _lease(pg_url, "j")
    assert first is not None
    assert (
        before + dt.timedelta(seconds=LEASE - 5) < first < before + dt.timedelta(seconds=LEASE + 5)
    )
    a._worker_lock._renew()  # one heartbeat
    assert _lease(pg_url, "j") > first
    a.close()


def test_a_job_whose_lease_ran_out_is_recovered_while_its_worker_still_reads_alive(pg_url):
    a, b = _queue(pg_url), _queue(pg_url)
    a.enqueue_many([{"type": "T"}, {"type": "T"}], job_ids=["stuck", "fine"])
    assert [j.job_id for j in a.claim_many(2)] == ["stuck", "fine"]
    assert b.recover() == []  # both leases live: nothing to take
    _expire(pg_url, "stuck")
    assert a.backend.worker_alive(a.worker_id)  # the worker's row is still alive
    [recovered] = b.recover()
    assert recovered.job_id == "stuck" and recovered.status is JobStatus.QUEUED
    assert recovered.attempts == 1 and "died" in (recovered.error_message or "")
    again = b.claim()
    assert again is not None and again.job_id == "stuck" and again.attempts == 2
    # The first worker's heartbeat renews only what is still Running under it...
    b_lease = _lease(pg_url, "stuck")
    a_lease = _lease(pg_url, "fine")
    a._worker_lock._renew()
    assert _lease(pg_url, "stuck") == b_lease
    assert _lease(pg_url, "fine") > a_lease
    # ...and its late result for the job it lost is refused; the new holder's stands.
    with pytest.raises(JobConflict):
        a.complete("stuck", "late")
    b.complete("stuck", "on time")
    a.complete("fine", "ok")
    assert b.get("stuck").result == "on time"
    assert b.counts()["Completed"] == 2
    a.close()
    b.close()


def test_a_lease_that_ran_out_is_not_renewed_by_a_late_heartbeat(pg_url):
    # Past its lease the job belongs to whoever recovers it: a beat that comes too late
    # must not make it look alive again.
    a = _queue(pg_url)
    a.enqueue({"type": "T"}, job_id="j")
    a.claim()
    _expire(pg_url, "j")
    expired = _lease(pg_url, "j")
    a._worker_lock._renew()
    assert _lease(pg_url, "j") == expired
    b = _queue(pg_url)
    assert [j.job_id for j in b.recover()] == ["j"]
    a.close()
    b.close()


def test_a_heartbeat_skips_a_row_another_transaction_holds_instead_of_waiting(pg_url):
    # The worker's own completion locks its rows in its own order; a heartbeat that waited
    # for them deadlocked with it (seen under load). Held rows are skipped, the rest renewed.
    a = _queue(pg_url)
    a.enqueue_many([{"type": "T"}, {"type": "T"}], job_ids=["held", "free"])
    a.claim_many(2)
    held, free = _lease(pg_url, "held"), _lease(pg_url, "free")
    with psycopg.connect(pg_url) as other:
        other.execute("SELECT 1 FROM jobledger_jobs WHERE job_id = 'held' FOR UPDATE")
        # A wait would fail the beat at once instead of hanging the test.
        a._worker_lock._conn.execute("SET lock_timeout = '50ms'")
        a._worker_lock._renew()
        assert _lease(pg_url, "free") > free
        assert _lease(pg_url, "held") == held
        other.rollback()
    a._worker_lock._renew()  # the next beat renews it
    assert _lease(pg_url, "held") > held
    a.close()
