"""PostgreSQL: a worker's claim, completion, failure and requeue, and its completions
recorded with its next claim, are ONE autocommit statement each (``_claims.py``).

Counted here on the backend's own connection: one statement sent, no transaction opened.
Also: the claim statement's check for a worker whose session ended (it claims nothing
then, and the claim made after recovery serves that worker's jobs first), the settings
of the backend's connection (the claim reads its index, nothing is JIT-compiled) and the
prepared statements psycopg makes of the repeated ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

from jobledger import JobConflict, JobQueue, JobStatus  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import _queries as q  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402
from tests.backends.postgres.test_session_liveness import (  # noqa: E402
    _one_job_of_a_killed_worker,
    _queue,
)

NOW = "2026-01-01T00:00:00Z"


def _queued(job_id: str) -> JobRecord:
    return JobRecord.queued(
        job_id, "T", {}, priority=0, max_attempts=3, created=NOW, run_after=None
    )


class _Sent:
    """What a backend sends on its own connection: each statement, and each transaction
    it opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend: PostgresJobBackend) -> None:
        self.statements: list[str] = []
        self.transactions: list[str] = []
        db = backend._db
        db.ensure_schema()  # connected (and migrated) before counting
        execute = psycopg.Connection.execute

        def counting(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if conn is db._conn:
                self.statements.append(str(query))
            return execute(conn, query, *args, **kwargs)

        transaction = db.transaction

        @contextlib.contextmanager
        def counted(action: str, **kwargs: Any) -> Iterator[Any]:
            self.transactions.append(action)
            with transaction(action, **kwargs) as conn:
                yield conn

        monkeypatch.setattr(psycopg.Connection, "execute", counting)
        monkeypatch.setattr(db, "transaction", counted)

    def take(self) -> tuple[list[str], list[str]]:
        """What was sent since the last call."""
        out = (self.statements, self.transactions)
        self.statements, self.transactions = [], []
        return out


def _first_line(statement: str) -> str:
    return statement.strip().splitlines()[0]


def test_each_of_a_workers_writes_is_one_statement_and_no_transaction(pg_url, monkeypatch):
    queue = JobQueue(pg_url, recover_every=3600)
    queue.enqueue_many([{"type": "T"}] * 6, job_ids=["a", "b", "c", "d", "e", "f"])
    backend = queue.backend
    assert isinstance(backend, PostgresJobBackend)
    sent = _Sent(monkeypatch, backend)
    try:
        operations = {
            "claim": lambda: queue.claim_many(3),  # a, b, c
            "complete": lambda: queue.complete("a", 1),
            "fail": lambda: queue.fail("b", "boom"),
            "requeue": lambda: queue.requeue("c"),
            # c, given back, is served first
            "record and claim": lambda: queue._record_and_claim([], 1, None),
            "record with the claim": lambda: queue._record_and_claim([("c", 2)], 2, None),
        }
        for name, operation in operations.items():
            operation()
            statements, transactions = sent.take()
            assert (len(statements), transactions) == (1, []), (name, statements)
        assert [queue.get(i).status for i in "abcd"] == [
            JobStatus.COMPLETED,
            JobStatus.QUEUED,  # its retry not yet due
            JobStatus.COMPLETED,
            JobStatus.RUNNING,
        ]
        # A job this queue did not claim goes the locking way: one transaction, which
        # refuses it as before.
        sent.take()
        with pytest.raises(JobConflict):
            queue.complete("f", "not mine")
        statements, transactions = sent.take()
        assert transactions == ["change jobs"]
        assert any(_first_line(s).startswith("SELECT") and "FOR UPDATE" in s for s in statements)
    finally:
        queue.close()


def test_a_claim_statement_claims_nothing_while_a_workers_session_has_ended(pg_url):
    observer = _queue(pg_url)
    observer.pending_count()  # its first use (and recovery) is done: only claims recover
    worker = _one_job_of_a_killed_worker(pg_url)  # "job", Running under a dead session
    other = PostgresJobBackend(pg_url)  # enqueues without a queue's first-use recovery
    other.put([_queued("q1"), _queued("q2")])
    other.close()
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction(force_rollback=True):
        rows = conn.execute(q.claim_next(False, 5), (NOW, 0, "someone", NOW, 60.0)).fetchall()
        gone, version, *columns = rows[0]
        assert version == 0  # no limit was ever stored
        assert len(rows) == 1 and gone is True and set(columns) == {None}
        status = conn.execute("SELECT job_id, status FROM jobledger_jobs ORDER BY job_id")
        assert status.fetchall() == [("job", "Running"), ("q1", "Queued"), ("q2", "Queued")]
    # The queue's claim then recovers first: the dead worker's job ahead of every other.
    got = observer.claim_many(5)
    assert [(j.job_id, j.attempts) for j in got] == [("job", 2), ("q1", 1), ("q2", 1)]
    assert got[0].worker == observer.worker_id != worker
    observer.close()


def test_the_backends_connection_reads_the_serving_order_from_its_index(pg_url):
    backend = PostgresJobBackend(pg_url)
    try:
        now = "2026-01-01T00:00:00Z"
        records = [
            JobRecord.queued(
                f"j{i:05d}", "T", {}, priority=0, max_attempts=3, created=now, run_after=None
            )
            for i in range(2000)
        ]
        backend.put(records, frozenset(r.job_id for r in records))  # not analyzed since
        with backend._db.transaction("look") as conn:
            settings = conn.execute("SELECT current_setting('enable_sort'), current_setting('jit')")
            assert settings.fetchone() == ("off", "off")
            explain = psycopg.ClientCursor(conn).execute(
                "EXPLAIN " + q.claim_next(False, 100), (now, 0, "w", now, 60.0)
            )
            plan = "\n".join(row[0] for row in explain)
        assert "Index Scan using jobledger_jobs_serving" in plan, plan
        assert "Sort" not in plan, plan
        # Only the backend's own connection: another session keeps the server's settings.
        heartbeat = backend._db.session("worker heartbeat")
        try:
            assert heartbeat.execute("SHOW enable_sort").fetchone() == ("on",)
        finally:
            heartbeat.close()
    finally:
        backend.close()


def test_the_repeated_statements_are_prepared_on_the_server(pg_url):
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        queue.enqueue_many([{"type": "T"}] * 20)
        for _ in range(6):  # psycopg prepares a statement on its fifth run
            [job] = queue.claim_many(1)
            queue.complete(job.job_id, "ok")
        [job] = queue.claim_many(1)
        for _ in range(6):  # a worker's loop: each claim records the job before it
            [job], recorded, _ = queue._record_and_claim([(job.job_id, "ok")], 1, None)
            assert recorded == 1
        backend = queue.backend
        assert isinstance(backend, PostgresJobBackend)
        with backend._db.transaction("look") as conn:
            assert conn.prepare_threshold == 5
            prepared = [r[0] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
        assert any("claimed AS" in s and "swapped AS" not in s for s in prepared), prepared
        assert any("swapped AS" in s and "claimed AS" not in s for s in prepared), prepared
        assert any("swapped AS" in s and "claimed AS" in s for s in prepared), prepared
    finally:
        queue.close()
