"""Jobs inserted with the caller's own connection, in the caller's own transaction:
``JobQueue.enqueue(..., connection=conn)`` on PostgreSQL.

The transaction is the caller's: begun by the caller (or by psycopg, at the first
statement on a connection that is not in autocommit), committed or rolled back by the
caller. The jobs exist if and only if it commits. Their wake-up (NOTIFY) is sent in it
too, and PostgreSQL delivers a notification only when its transaction commits (one sent
in a savepoint that is rolled back is dropped with it): idle workers wake when the jobs
can be claimed, and never for jobs that were rolled back.

What runs on the caller's connection, in order:

1. which database it reaches (``DATABASE_IDENTITY``): the queue's, or :class:`ConfigError`,
   since a job inserted elsewhere would never be served. On a connection idle outside a
   transaction, this is the statement psycopg begins the caller's transaction with.
2. a savepoint (psycopg's nested ``transaction()``): a statement of ours that fails is
   rolled back alone, and the caller's transaction stays usable;
3. the queue's schema as the search_path (``JOIN_SEARCH_PATH``), then ``pg_temp``: the
   named statements of every enqueue (``_queries.py``) name their tables unqualified, and
   so find the queue's tables wherever the caller's search_path points, and no temporary
   table can shadow them; the wake-up's payload (the schema) is the queue's too;
4. the insert: ``ENQUEUE_ONE`` for one job, ``put``'s statements for several (COPY for a
   batch of generated ids), with the record codec of every enqueue (``_rows.py``);
5. the caller's search_path put back (``RESTORE_SEARCH_PATH``), and the savepoint
   released. After an error, the savepoint's rollback puts it back.

Our statements get plain tuples from plain cursors whatever the connection's
``row_factory`` and ``cursor_factory`` say (both are set for the block and put back).
The queue learns its schema and its database from its own connection (its URL), which it
opens, and migrates, first.

Refused before anything is sent: a ``psycopg.AsyncConnection`` (the async API's), or
anything else that is not a ``psycopg.Connection`` (:class:`WrongConnection`); a
connection in autocommit outside a transaction block (there is no transaction to join:
the job would be committed at once, whatever the caller does next); one whose transaction
failed (it must be rolled back first), one in pipeline mode, one that is closed. Nothing
is retried on a lost connection: the caller's transaction went with it, and running it
again is the caller's business.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..._errors import ConfigError
from ..._job_record import JobRecord
from . import _queries as q
from ._db import Database
from ._errors import SchemaMissing, WrongConnection
from ._listen import CHANNEL
from ._rows import doc_of, record_of

__all__ = ["CallerTransactions", "PutMany"]

#: ``put``'s statements on a connection: the records staged (with their seq), the ids
#: inserted, the stored records of the ids that existed.
PutMany = Callable[
    [psycopg.Connection[Any], dict[str, JobRecord], frozenset[str]],
    tuple[dict[str, JobRecord], set[str], dict[str, JobRecord]],
]

_NOT_A_TRANSACTION = (
    "enqueue(connection=...) stores the job in the caller's transaction, and this "
    "connection is in autocommit mode outside any transaction: each statement would "
    "commit by itself, and the job would exist whatever the caller did next. Open a "
    "transaction first (with conn.transaction(): ...), or enqueue without connection= "
    "(the job is then stored when enqueue returns)"
)


def _checked(connection: object) -> psycopg.Connection[Any]:
    """``connection``, a psycopg 3 Connection with a transaction to join; else why not."""
    if isinstance(connection, psycopg.AsyncConnection):
        raise WrongConnection(
            "connection= got a psycopg.AsyncConnection: asyncio connections are the async "
            "API's business (jobledger.aio), not this JobQueue's, whose enqueue blocks. "
            "Pass a psycopg.Connection, in a transaction of yours"
        )
    if not isinstance(connection, psycopg.Connection):
        kind = f"{type(connection).__module__}.{type(connection).__qualname__}"
        raise WrongConnection(
            f"connection= takes a psycopg 3 connection (psycopg.Connection), got {kind}; "
            "pass the connection whose transaction the job belongs to (from a pool: the "
            "connection it lends, not the pool)"
        )
    if connection.closed:
        raise ConfigError("connection= got a closed connection: nothing was enqueued")
    status = connection.info.transaction_status
    if status == pq.TransactionStatus.INERROR:
        raise ConfigError(
            "connection= got a connection whose transaction has failed (a statement in it "
            "raised): roll it back (or back to a savepoint) first; nothing was enqueued"
        )
    if status == pq.TransactionStatus.UNKNOWN:
        raise ConfigError("connection= got a broken connection: nothing was enqueued")
    if status == pq.TransactionStatus.IDLE and connection.autocommit:
        raise ConfigError(_NOT_A_TRANSACTION)
    if connection.info.pipeline_status != pq.PipelineStatus.OFF:
        raise ConfigError(
            "connection= got a connection in pipeline mode: enqueue outside the "
            "conn.pipeline() block; nothing was enqueued"
        )
    return connection


def _enqueue_one(conn: psycopg.Connection[Any], record: JobRecord) -> tuple[JobRecord, bool]:
    """One job, by ``ENQUEUE_ONE``: (the record inserted, True), or (the stored one, False)."""
    doc = Jsonb([doc_of(record)])
    while True:
        job_id, key = record.job_id, record.unique_key
        row = conn.execute(q.ENQUEUE_ONE, (doc, CHANNEL, job_id, key, job_id)).fetchone()
        if row is None:  # stored by a commit after this statement's snapshot
            found = conn.execute(q.GET_JOB_OR_KEY_HOLDER, (job_id, key, job_id)).fetchone()
            row = None if found is None else (False, *found)
        if row is not None:
            return record_of(row[1:]), bool(row[0])
        # Stored by another and deleted since (a prune, a clear): insert it now.


@contextlib.contextmanager
def _plain_rows(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Plain cursors returning tuples on ``conn`` for the block, whatever the caller set."""
    rows, cursors = conn.row_factory, conn.cursor_factory
    conn.row_factory, conn.cursor_factory = tuple_row, psycopg.Cursor
    try:
        yield
    finally:
        conn.row_factory, conn.cursor_factory = rows, cursors


class CallerTransactions:
    """A PostgreSQL queue's inserts on its callers' connections; see the module
    docstring. ``db`` is the queue's own :class:`Database` (its schema, its database)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._identity: tuple[Any, ...] | None = None  # the queue's database and server

    def put(
        self,
        connection: object,
        records: list[JobRecord],
        fresh: frozenset[str],
        put_many: PutMany,
    ) -> list[tuple[JobRecord, bool]]:
        """``JobBackend.put`` on the caller's ``connection``, in its transaction."""
        conn = _checked(connection)
        unique: dict[str, JobRecord] = {}
        for record in records:
            unique.setdefault(record.job_id, record)
        if not unique:
            return []
        with self._joined(conn):
            if len(unique) == 1:
                stored, new = _enqueue_one(conn, next(iter(unique.values())))
                staged, inserted, existing = {stored.job_id: stored}, set(), {}
                if new:
                    inserted.add(stored.job_id)
                else:
                    existing[stored.job_id] = stored
            else:
                staged, inserted, existing = put_many(conn, unique, fresh)
        out = []
        for record in records:  # an id given twice: new once, then as stored
            job_id = record.job_id
            if job_id in inserted:
                out.append((staged[job_id], True))
                inserted.discard(job_id)
                existing[job_id] = staged[job_id]
            else:
                out.append((existing[job_id], False))
        return out

    @contextlib.contextmanager
    def _joined(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Steps 1, 2, 3 and 5 of the module docstring around the block (step 4)."""
        schema = self._db.ensure_schema()  # the queue's own connection: opened, migrated
        path = f"{sql.Identifier(schema).as_string(conn)}, pg_temp"
        action = "enqueue in the caller's transaction"
        with _plain_rows(conn):
            try:
                self._check_database(conn)
                with conn.transaction():
                    before = conn.execute(q.JOIN_SEARCH_PATH, (path,)).fetchone()
                    assert before is not None
                    yield
                    conn.execute(q.RESTORE_SEARCH_PATH, (before[0],))
            except psycopg.errors.UndefinedTable as exc:
                raise SchemaMissing(
                    f"no jobledger tables in schema {schema} of the connection's database "
                    f"{conn.info.dbname} (the queue's own connection found them: were they "
                    "dropped since?); run `jobledger db migrate --url URL` with the queue's "
                    "URL. Nothing was enqueued, and the caller's transaction can go on"
                ) from exc
            except psycopg.Error as exc:
                raise self._db.error(action, exc) from exc

    def _check_database(self, conn: psycopg.Connection[Any]) -> None:
        """ConfigError unless ``conn`` reaches the queue's database (by its name and its
        server's start: another server's database of the same name is not it)."""
        row = conn.execute(q.DATABASE_IDENTITY).fetchone()
        theirs = tuple(row) if row is not None else ()
        if theirs == self._queue_identity(again=False):
            return
        mine = self._queue_identity(again=True)  # the server may have restarted since
        if theirs != mine:
            raise ConfigError(
                f"connection= reaches database {theirs[0]} of a server started at "
                f"{theirs[1]}, not the queue's: database {mine[0]} of the server started "
                f"at {mine[1]} ({self._db.location}). A job inserted there would never be "
                "served: pass a connection to the queue's database. Nothing was enqueued"
            )

    def _queue_identity(self, *, again: bool) -> tuple[Any, ...]:
        """The queue's database name and its server's start, read on its own connection
        (once; ``again`` reads it anew)."""
        if self._identity is None or again:
            with self._db.transaction("read which database the queue is in", durable=False) as c:
                row = c.execute(q.DATABASE_IDENTITY).fetchone()
            assert row is not None
            self._identity = tuple(row)
        return self._identity
