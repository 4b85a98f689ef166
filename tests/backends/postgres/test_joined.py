"""Enqueue inside the caller's own transaction (``enqueue(..., connection=conn)``): the
job exists, and workers are woken, if and only if the caller's transaction commits.

The caller's connections here reach the test database with its default search_path
(``public``, where no jobledger table is), not the queue's schema: the queue finds its
own tables whatever the caller's search_path says, and puts that search_path back.

No sleeping: "no wake-up" is read off a LISTEN session of the test's own, up to a marker
notification sent after the transaction ended (notifications arrive in commit order);
a worker in another process polls once an hour, so only a wake-up brings it the job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends.postgres._pg import ADMIN_URL, PgDatabase, require_psycopg, until

require_psycopg()

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from jobledger import ConfigError, JobLedgerError, JobQueue, JobStatus, Worker  # noqa: E402
from jobledger.backends.postgres import SchemaMissing, WrongConnection  # noqa: E402
from tests._child import Channel, Child  # noqa: E402

CHANNEL = "jobledger_jobs"
MARKER = "end of the test's transactions"


@pytest.fixture
def queue(pg_url: str) -> Iterator[JobQueue]:
    q = JobQueue(pg_url, durability="flush")
    q.pending_count()  # its first use: the tables exist before the caller's transaction
    yield q
    q.close()


@pytest.fixture
def caller(pg_database: PgDatabase) -> Iterator[psycopg.Connection[Any]]:
    """The application's connection: not autocommit, the database's default search_path."""
    with psycopg.connect(pg_database.url) as conn:
        yield conn


def _schema(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return str(row[0])


class Wakeups:
    """The test's own LISTEN on the workers' channel: which wake-ups were sent."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def until_now(self) -> int:
        """How many wake-ups for the queue's schema were delivered before a marker sent
        now (every transaction that ended before this call has had its say)."""
        with psycopg.connect(self.url, autocommit=True) as other:
            other.execute("SELECT pg_notify(%s, %s)", (CHANNEL, MARKER))
        seen = 0
        for note in self.conn.notifies(timeout=60):
            if note.payload == MARKER:
                return seen
            seen += note.payload == self.schema
        raise AssertionError("the marker notification never came")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def wakeups(pg_database: PgDatabase, pg_url: str) -> Iterator[Wakeups]:
    w = Wakeups(pg_database.url, _schema(pg_url))
    yield w
    w.close()


def _listeners(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s"
            " AND datname = current_database() AND query ILIKE 'LISTEN%%'",
            ("jobledger listen for new jobs%",),
        ).fetchone()
    return int(row[0]) if row else 0


def _idle_worker(url: str):
    def target(chan: Channel) -> None:
        queue = JobQueue(url, durability="flush")

        def handler(job) -> str:
            chan.send(f"ran {job.job_id} {job.raw['order']}")
            return "ok"

        worker = Worker(queue, {"Ship": handler}, poll_interval=3600, handle_signals=False)
        threading.Thread(target=lambda: (chan.recv(), worker.stop()), daemon=True).start()
        chan.send("ready")
        worker.run()
        queue.close()

    return target


def test_a_committed_job_exists_and_wakes_an_idle_worker_in_another_process(
    pg_url, queue, caller, wakeups
):
    child = Child(_idle_worker(pg_url))
    try:
        child.read_until("ready")
        until(lambda: _listeners(pg_url) == 1, 30, "listening")
        path = caller.execute("SHOW search_path").fetchone()
        caller.execute("CREATE TEMP TABLE orders (id int)")
        caller.execute("INSERT INTO orders VALUES (42)")
        job_id = queue.enqueue({"type": "Ship", "order": 42}, connection=caller)
        assert caller.execute("SHOW search_path").fetchone() == path  # put back
        assert queue.get(job_id) is None  # not there for anyone until the commit
        caller.commit()
        assert child.read_until("ran ") == f"{job_id} 42"
        child.send("stop")
        child.check()
        assert queue.get(job_id).status is JobStatus.COMPLETED
        assert wakeups.until_now() == 1
    finally:
        if child.status is None:
            child.kill()


def test_a_rolled_back_job_never_existed_and_woke_no_one(queue, caller, wakeups):
    caller.execute("SELECT 1")  # the caller's transaction is open
    job_id = queue.enqueue({"type": "Ship", "order": 1}, connection=caller)
    caller.rollback()
    assert queue.get(job_id) is None and queue.counts()["Queued"] == 0
    assert wakeups.until_now() == 0
    caller.execute("SELECT 1")
    queue.enqueue({"type": "Ship", "order": 2}, connection=caller)
    caller.commit()
    assert wakeups.until_now() == 1  # the test sees a wake-up when one is sent


def test_a_rolled_back_savepoint_takes_its_job_and_only_its_job(queue, caller, wakeups):
    with caller.transaction():
        caller.execute("CREATE TEMP TABLE orders (id int)")
        kept = queue.enqueue({"type": "Ship", "order": 1}, connection=caller)
        with caller.transaction() as savepoint:
            dropped = queue.enqueue({"type": "Ship", "order": 2}, connection=caller)
            raise psycopg.Rollback(savepoint)
        caller.execute("INSERT INTO orders VALUES (3)")  # the transaction goes on
    assert queue.get(dropped) is None
    assert queue.get(kept).status is JobStatus.QUEUED
    assert wakeups.until_now() == 1  # the kept job's; none for the dropped one alone
    with caller.transaction(), caller.transaction() as savepoint:
        queue.enqueue({"type": "Ship", "order": 4}, connection=caller)
        raise psycopg.Rollback(savepoint)
    assert queue.counts()["Queued"] == 1 and wakeups.until_now() == 0


def test_many_jobs_in_one_transaction_and_an_existing_id_is_not_stored_twice(
    queue, caller, pg_database
):
    first = queue.enqueue({"type": "Ship", "order": 0}, job_id="order-0")
    ids = queue.enqueue_many(  # 40 generated ids: the COPY path, in the caller's transaction
        [{"type": "Ship", "order": i} for i in range(1, 41)], connection=caller
    )
    again = queue.enqueue({"type": "Ship", "order": 99}, job_id="order-0", connection=caller)
    assert again == first and queue.get(first).raw == {"order": 0}
    caller.rollback()
    assert queue.counts()["Queued"] == 1
    ids = queue.enqueue_many(
        [{"type": "Ship", "order": i} for i in range(1, 41)], connection=caller
    )
    caller.commit()
    assert len(set(ids)) == 40 and queue.counts()["Queued"] == 41
    # Named ids, given twice, one of them stored already: one row each.
    mixed = queue.enqueue_many(
        [{"type": "Ship"}] * 3, job_ids=["order-0", "new", "new"], connection=caller
    )
    caller.commit()
    assert mixed == ["order-0", "new", "new"] and queue.counts()["Queued"] == 42
    # An autocommit connection inside a transaction block: that block is the transaction.
    with psycopg.connect(pg_database.url, autocommit=True) as auto:
        with auto.transaction():
            late = queue.enqueue({"type": "Ship", "order": 50}, connection=auto)
            assert queue.get(late) is None
        assert queue.get(late).status is JobStatus.QUEUED
    order = [j.job_id for j in queue.list(JobStatus.QUEUED)]
    assert order[0] == "order-0" and order[1:41] == ids and order[-2:] == ["new", late]


def test_the_callers_search_path_row_and_cursor_factories_do_not_matter(
    pg_database, queue, wakeups
):
    class Rows(psycopg.RawCursor):  # $1 placeholders: the queue's %s would not parse
        pass

    with psycopg.connect(pg_database.url, row_factory=dict_row, cursor_factory=Rows) as conn:
        # A table of the queue's name where the caller's search_path looks first, and a
        # temporary one, which PostgreSQL would look at before any schema.
        conn.execute("CREATE TEMP TABLE jobledger_jobs (job_id text)")
        job_id = queue.enqueue({"type": "Ship"}, connection=conn)
        conn.commit()
        assert conn.row_factory is dict_row and conn.cursor_factory is Rows
        assert conn.execute("SELECT count(*) AS n FROM jobledger_jobs").fetchone() == {"n": 0}
    assert queue.get(job_id).status is JobStatus.QUEUED
    assert wakeups.until_now() == 1  # the payload is the queue's schema


def test_an_autocommit_connection_outside_a_transaction_is_refused(queue, pg_database):
    with (
        psycopg.connect(pg_database.url, autocommit=True) as auto,
        pytest.raises(ConfigError, match="autocommit mode outside any transaction"),
    ):
        queue.enqueue({"type": "Ship"}, connection=auto)
    assert queue.counts()["Queued"] == 0


def test_a_failed_or_closed_transaction_is_refused(queue, caller):
    with pytest.raises(psycopg.errors.DivisionByZero):
        caller.execute("SELECT 1 / 0")
    with pytest.raises(ConfigError, match="roll it back"):
        queue.enqueue({"type": "Ship"}, connection=caller)
    caller.rollback()
    caller.close()
    with pytest.raises(ConfigError, match="closed connection"):
        queue.enqueue({"type": "Ship"}, connection=caller)


def test_an_async_connection_or_another_object_is_a_type_error(queue, pg_database):
    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(pg_database.url)

    aconn = asyncio.run(connect())
    try:
        with pytest.raises(
            TypeError, match=r"AsyncConnection.*async API's business \(jobledger\.aio\)"
        ):
            queue.enqueue({"type": "Ship"}, connection=aconn)
    finally:
        asyncio.run(aconn.close())
    with pytest.raises(WrongConnection, match=r"got builtins\.object"):
        queue.enqueue_many([{"type": "Ship"}], connection=object())
    assert issubclass(WrongConnection, TypeError) and issubclass(WrongConnection, JobLedgerError)
    assert queue.counts()["Queued"] == 0


def test_a_connection_to_another_database_is_refused_and_its_transaction_goes_on(queue):
    with psycopg.connect(ADMIN_URL) as other:
        with pytest.raises(ConfigError, match=r"reaches database postgres .* not the queue's"):
            queue.enqueue({"type": "Ship"}, connection=other)
        assert other.execute("SELECT 1").fetchone() == (1,)  # still usable
    assert queue.counts()["Queued"] == 0


def test_tables_gone_from_the_queue_s_schema_are_a_clear_error(queue, caller, pg_url):
    path = caller.execute("SHOW search_path").fetchone()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DROP TABLE jobledger_jobs CASCADE")
    with pytest.raises(SchemaMissing, match=r"no jobledger tables in schema \S+ .*db migrate"):
        queue.enqueue({"type": "Ship"}, connection=caller)
    # Only the savepoint was rolled back: the caller's transaction and search_path stand.
    assert caller.execute("SHOW search_path").fetchone() == path
    assert caller.execute("SELECT 1").fetchone() == (1,)
    caller.commit()
