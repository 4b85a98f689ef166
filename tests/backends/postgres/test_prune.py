"""prune on PostgreSQL: batches that find the old finished rows through the finished index
(never reading the live rows, nor the whole table), take the rows without a finished time
too, and never wait on a row another transaction holds; and the claim, which reads the
Queued rows alone however many finished ones the table holds."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg

require_psycopg()

import psycopg  # noqa: E402

from jobledger import JobQueue, JobStatus  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import _queries as q  # noqa: E402
from jobledger.backends.postgres.jobs import _session_settings  # noqa: E402

CUTOFF = "2026-01-01T00:00:00.000Z"


def _fill(url: str, finished: int, queued: int) -> None:
    """``finished`` Completed rows, one finished a second from 2025-01-01, and ``queued``
    Queued ones, made by the server itself; then ANALYZE, as a grown table has had."""
    with JobQueue(url) as queue:
        queue.recover()  # the schema
    stamp = """to_char(timestamp '2025-01-01' + i * interval '1 second',
        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobledger_jobs (job_id, type, status, seq, created, finished, attempts)"
            f" SELECT 'old-' || i, 'T', 'Completed', nextval('jobledger_job_seq'), {stamp},"
            f" {stamp}, 1 FROM generate_series(1, %s) AS i",
            (finished,),
        )
        conn.execute(
            "INSERT INTO jobledger_jobs (job_id, type, status, seq, created)"
            " SELECT 'new-' || i, 'T', 'Queued', nextval('jobledger_job_seq'),"
            " '2026-01-02T00:00:00.000Z' FROM generate_series(1, %s) AS i",
            (queued,),
        )
        conn.execute("ANALYZE jobledger_jobs")


def _scans(plan: dict[str, Any]) -> set[tuple[str, str]]:
    """The (node type, index or '') of every node of ``plan`` that reads jobledger_jobs
    (the UPDATE or DELETE itself aside)."""
    out = set()
    if plan.get("Relation Name") == "jobledger_jobs" and plan["Node Type"] != "ModifyTable":
        out.add((plan["Node Type"], plan.get("Index Name", "")))
    for child in plan.get("Plans", []):
        out |= _scans(child)
    return out


def _plan(conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
    assert row is not None
    doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return doc[0]["Plan"]


def test_the_claim_reads_the_queued_rows_and_a_prune_batch_the_finished_ones(pg_url):
    _fill(pg_url, finished=20_000, queued=50)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        settings = _session_settings(fsync=True)  # those of the backend's own connection
        conn.execute(q.SESSION_SETTINGS, (list(settings), list(settings.values())))
        claim = _plan(conn, q.claim_next(False, 10), (CUTOFF, 0, "w", CUTOFF, 6.0))
        prune = _plan(conn, q.PRUNE_JOBS, (CUTOFF, 100, "", CUTOFF, 100))
    # The claim: the Queued rows through their serving index, then each picked row by its
    # key; no scan of the table, of the finished rows or of another index.
    assert _scans(claim) == {
        ("Index Scan", "jobledger_jobs_serving"),
        ("Index Scan", "jobledger_jobs_pkey"),
    }
    # A batch: the finished index (for the rows without a finished time, then the oldest),
    # and the rows picked by their ctid.
    assert _scans(prune) == {("Index Scan", "jobledger_jobs_finished"), ("Tid Scan", "")}


def test_a_large_history_goes_in_batches_oldest_first(pg_url):
    _fill(pg_url, finished=1_000, queued=5)
    with JobQueue(pg_url) as queue:
        queue.backend.prune_batch = 300
        oldest: list[str] = []

        def note_oldest(n: int) -> None:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute(
                    "SELECT min(finished) FROM jobledger_jobs WHERE status = 'Completed'"
                ).fetchone()
            oldest.append(row[0] if row else "")

        counts: list[int] = []

        def on_batch(n: int) -> None:
            counts.append(n)
            note_oldest(n)

        assert queue.prune(365 * 86_400, on_batch=on_batch) == 1_000
        assert counts == [300, 300, 300, 100]
        # Each batch took the oldest left: what remains starts where it stopped.
        assert oldest[:3] == [
            "2025-01-01T00:05:01.000Z",
            "2025-01-01T00:10:01.000Z",
            "2025-01-01T00:15:01.000Z",
        ]
        assert queue.counts() == {
            "Queued": 5,
            "Running": 0,
            "Completed": 0,
            "Failed": 0,
            "Cancelled": 0,
        }


def test_finished_jobs_without_a_finished_time_are_pruned_by_every_cutoff(pg_url, clock):
    def record(job_id: str, status: JobStatus, finished: str | None) -> JobRecord:
        return JobRecord(
            type="T", job_id=job_id, status=status, payload={}, seq=1, finished=finished
        )

    with JobQueue(pg_url, clock=clock) as queue:
        queue.recover()
        undated = [record(f"u{i}", JobStatus.CANCELLED, None) for i in range(3)]
        dated = [record(f"d{i}", JobStatus.COMPLETED, "2020-01-01T00:00:00.000Z") for i in range(3)]
        live = [record("queued", JobStatus.QUEUED, None)]
        assert queue.backend.import_records(undated + dated + live) == []
        assert {j.job_id for j in queue.prunable(0)} == {r.job_id for r in undated + dated}
        queue.backend.prune_batch = 2  # the undated fill the first batch, and half the next
        counts: list[int] = []
        assert queue.prune(0, on_batch=counts.append) == 6
        assert counts == [2, 2, 2]
        assert [j.job_id for j in queue.list()] == ["queued"]


def test_a_finished_row_another_transaction_holds_is_skipped_not_waited_for(pg_url, clock):
    with JobQueue(pg_url, clock=clock) as queue:
        queue.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])
        for _ in range(3):
            queue.complete(queue.claim().job_id)
        clock.advance(days=2)
        holder = psycopg.connect(pg_url)
        try:
            holder.execute("SELECT 1 FROM jobledger_jobs WHERE job_id = 'b' FOR UPDATE")
            result: list[int] = []
            done = threading.Event()

            def prune() -> None:
                result.append(queue.prune(86_400))
                done.set()

            thread = threading.Thread(target=prune)
            thread.start()
            assert done.wait(60), "the prune waited for the row another transaction holds"
        finally:
            holder.rollback()
            holder.close()
        thread.join(60)
        assert result == [2]
        assert [j.job_id for j in queue.list()] == ["b"]
        assert queue.prune(86_400) == 1  # released: the next prune takes it


@pytest.mark.parametrize("batch", [1, 2])
def test_a_batch_cut_off_by_a_lost_connection_is_run_again_and_the_rest_goes_on(
    pg_url, clock, batch
):
    with JobQueue(pg_url, clock=clock) as queue:
        queue.enqueue_many([{"type": "T"}] * 4, job_ids=["a", "b", "c", "d"])
        for _ in range(4):
            queue.complete(queue.claim().job_id)
        clock.advance(days=2)
        backend = queue.backend
        backend.prune_batch = batch

        def cut(n: int) -> None:
            # The backend's session ends between two batches (a server restart, a network
            # cut): the next batch reconnects.
            pid = backend._db._conn.info.backend_pid
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

        assert queue.prune(86_400, on_batch=cut) == 4
        assert queue.list() == []
