"""Enqueueing one job on PostgreSQL is ONE statement in autocommit (q.ENQUEUE_ONE).

One round trip: no BEGIN, no COMMIT, no separate nextval or NOTIFY. The semantics stay
the transaction's: an existing id returns the stored job and writes nothing, ``seq`` grows,
and a statement whose answer was lost (the connection dropped while it ran) is settled by
reading the job back: the call's own landed insert is returned as new, exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends.postgres._pg import require_psycopg

psycopg = require_psycopg()

from jobledger import JobQueue  # noqa: E402
from jobledger._job_record import JobRecord  # noqa: E402
from jobledger.backends.postgres import _db  # noqa: E402
from jobledger.backends.postgres._db import Database  # noqa: E402
from jobledger.backends.postgres.jobs import PostgresJobBackend  # noqa: E402


def _record(job_id: str, created: str = "2026-01-01T00:00:00", kind: str = "T") -> JobRecord:
    return JobRecord.queued(
        job_id, kind, {"n": 1}, priority=0, max_attempts=3, created=created, run_after=None
    )


@pytest.fixture
def backend(pg_url: str) -> Iterator[PostgresJobBackend]:
    b = PostgresJobBackend(pg_url)
    b.get("warm-up")  # connects and migrates first
    yield b
    b.close()


class _Spy:
    """Counts what the backend's connection is asked to run, and the transactions opened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, db: Database) -> None:
        self.sent: list[str] = []
        self.transactions = 0
        assert db._conn is not None
        conn = db._conn
        execute = conn.execute

        def spy_execute(query: Any, *args: Any, **kwargs: Any) -> Any:
            self.sent.append(str(query))
            return execute(query, *args, **kwargs)

        monkeypatch.setattr(conn, "execute", spy_execute)
        transaction = Database.transaction

        def spy_transaction(this: Database, *args: Any, **kwargs: Any) -> Any:
            self.transactions += 1
            return transaction(this, *args, **kwargs)

        monkeypatch.setattr(Database, "transaction", spy_transaction)


def test_a_new_job_is_one_statement_without_a_transaction(backend, monkeypatch):
    spy = _Spy(monkeypatch, backend._db)
    [(stored, new)] = backend.put([_record("a")])
    assert new and stored.job_id == "a" and stored.seq is not None
    assert (len(spy.sent), spy.transactions) == (1, 0)  # no BEGIN, nextval, NOTIFY, COMMIT
    assert backend._db._conn is not None
    assert backend._db._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert backend.get("a") == stored


def test_an_existing_id_returns_the_stored_job_in_one_statement_and_writes_nothing(
    backend, monkeypatch
):
    [(first, _)] = backend.put([_record("a", created="2026-01-01T00:00:00")])
    spy = _Spy(monkeypatch, backend._db)
    [(again, new)] = backend.put([_record("a", created="2026-02-02T00:00:00", kind="U")])
    assert not new
    assert (len(spy.sent), spy.transactions) == (1, 0)
    assert again == first  # the stored job, not the one sent
    assert backend.get("a") == first


def test_one_by_one_enqueues_take_growing_seqs_and_an_id_twice_is_stored_once(backend):
    out = [backend.put([_record(f"j{i}")])[0] for i in range(4)]
    seqs = [r.seq for r, _ in out]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    twice = backend.put([_record("k"), _record("k")])
    assert [new for _, new in twice] == [True, False]
    assert twice[0][0] == twice[1][0] == backend.get("k")


def _drop_after_statement(monkeypatch: pytest.MonkeyPatch, db: Database) -> list[bool]:
    """The next enqueue statement runs (and commits), then its connection drops before its
    answer is read: an unknown outcome with no seq known."""
    fired: list[bool] = []
    assert db._conn is not None
    conn = db._conn
    execute = conn.execute

    def dropping(query: Any, *args: Any, **kwargs: Any) -> Any:
        cur = execute(query, *args, **kwargs)
        if not fired and "pg_notify" in str(query):
            fired.append(True)
            conn.close()
            raise psycopg.OperationalError("the connection dropped")
        return cur

    monkeypatch.setattr(conn, "execute", dropping)
    monkeypatch.setattr(_db, "_BACKOFF_FIRST", 0.0)
    return fired


def test_a_landed_insert_whose_answer_was_lost_is_returned_as_new_once(
    backend, pg_url, monkeypatch
):
    fired = _drop_after_statement(monkeypatch, backend._db)
    [(stored, new)] = backend.put([_record("a")])
    assert fired == [True]
    assert new  # the call's own insert, not "already exists"
    assert stored == backend.get("a")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM jobledger_jobs").fetchone() == (1,)


def test_a_lost_answer_does_not_take_another_callers_job_for_its_own(backend, monkeypatch):
    other = backend.put([_record("a", created="2025-05-05T00:00:00", kind="U")])[0][0]
    fired = _drop_after_statement(monkeypatch, backend._db)
    [(stored, new)] = backend.put([_record("a")])
    assert fired == [True]
    assert not new and stored == other  # stored before: not this call's insert


def test_durability_flush_takes_the_transaction_path(pg_url, monkeypatch):
    """SET LOCAL synchronous_commit needs a transaction: "flush" keeps it."""
    b = PostgresJobBackend(pg_url, fsync=False)
    try:
        b.get("warm-up")
        spy = _Spy(monkeypatch, b._db)
        [(_, new)] = b.put([_record("a")])
        assert new and spy.transactions == 1
        assert any("synchronous_commit" in s for s in spy.sent)
    finally:
        b.close()


def test_a_new_job_wakes_a_listener(pg_url):
    queue = JobQueue(pg_url, recover_every=3600)
    try:
        queue.enqueue({"type": "warm-up"}, job_id="w")
        with psycopg.connect(pg_url, autocommit=True) as listener:
            listener.execute("LISTEN jobledger_jobs")
            queue.enqueue({"type": "T"}, job_id="one")
            got = list(listener.notifies(timeout=5, stop_after=1))
            assert len(got) == 1
            queue.enqueue({"type": "T"}, job_id="one")  # exists: writes nothing, no wake-up
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []
    finally:
        queue.close()
