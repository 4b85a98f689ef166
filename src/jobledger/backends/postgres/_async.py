"""The job tables from asyncio: what ``jobledger.aio.AsyncJobQueue`` does natively on
PostgreSQL, on psycopg's ``AsyncConnection``, without a thread.

These are the calls a web service makes in its request path:

- :meth:`AsyncJobs.put` (``enqueue``, ``enqueue_many``): the blocking backend's statements
  (``ENQUEUE_ONE`` for one job under durability "fsync", else ``NEXT_SEQS``,
  ``INSERT_NEW_JOBS``, ``NOTIFY`` and ``GET_JOBS`` in one transaction, without the COPY
  path), its row codec (``_rows.py``), and its settling of a statement or COMMIT whose
  answer was lost (see ``jobs.py``): run again, nothing is inserted twice (the id is the
  key), and a job found stored with what the lost attempt gave it counts as its insert;
- :meth:`AsyncJobs.get` (``get``, each read of ``wait``): ``GET_JOB``;
- :meth:`AsyncJobs.listen_finished` (``wait``'s wake-ups): a task on the event loop that
  LISTENs on the finished jobs' channel (``_listen.py``) on a session of its own, calls
  back once it listens (again), and reconnects with backoff.

The records come from the policy (``_enqueue.py``) and go back to it (``JobQueue``'s
announcement of an enqueue, its ``Job`` views): nothing here decides anything.

Connections: a pool of its own, up to ``max_connections`` autocommit sessions opened on
demand and kept while idle. A connection that broke, or whose call was cancelled midway
(its state unknown), is closed, never handed out again. A lost connection is replaced
with backoff (0.1 s doubling to 5 s) for up to the database's ``reconnect_for``, as the
blocking backend's are. An :class:`AsyncJobs` serves one event loop at a time: used from
another (a new ``asyncio.run``), it starts its listener and its bound on connections
afresh there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from ..._inputs import findable
from ..._job_record import JobRecord
from . import _queries as q
from ._db import Database
from ._errors import DatabaseError
from ._listen import CHANNEL, FINISHED_CHANNEL, FINISHED_LISTENING, finished_ids
from ._put import (
    ONE_STORED_AGAIN,
    blocks_for,
    one_args,
    one_outcome,
    one_sent,
    put_outcomes,
    seqs_of,
)
from ._rows import doc_of, record_of
from .jobs import PostgresJobBackend

__all__ = ["AsyncJobs", "ensure_schema"]

log = logging.getLogger("jobledger")

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0
# The server's "run it again" errors: the transaction was rolled back whole.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def ensure_schema(backend: PostgresJobBackend) -> None:
    """Connect ``backend`` (blocking: run it in a thread): a writer migrates, a reader
    checks the schema is there and current (SchemaMissing otherwise), as on first use."""
    backend._db.ensure_schema()


class _Lost(Exception):
    """A connection was lost (or could not be made again): run the call again."""

    def __init__(self, error: DatabaseError) -> None:
        super().__init__(str(error))
        self.error = error


class AsyncJobs:
    """Native asyncio access to the job tables of ``backend`` (its URL, settings and
    durability); see the module docstring."""

    def __init__(self, backend: PostgresJobBackend, *, max_connections: int = 4) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self._db: Database = backend._db
        self._fsync = backend._fsync
        self.location = backend.location
        self.max_connections = max_connections
        self._idle: list[Conn] = []
        self._slots: asyncio.Semaphore | None = None
        self._connected = False  # once connected, a failed reconnection is waited out
        self._listener: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop served

    def _on_this_loop(self) -> None:
        """Serve the running loop: a semaphore and a task belong to the loop they were
        made on (the connections do not: psycopg waits on the running loop each call)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.max_connections)
            self._listener = None

    # -- connections ----------------------------------------------------------------------

    async def _take(self) -> Conn:
        while self._idle:
            conn = self._idle.pop()
            if not (conn.closed or conn.broken):
                return conn
        try:
            conn = await self._db.async_session("async requests")
        except DatabaseError as exc:
            if self._connected:  # the server went away: wait for it, as a lost session
                raise _Lost(exc) from exc
            raise  # a first connection: a wrong URL, a server down, reported at once
        self._connected = True
        return conn

    async def _give_back(self, conn: Conn, reusable: bool) -> None:
        if (
            reusable
            and not (conn.closed or conn.broken)
            and conn.info.transaction_status is TransactionStatus.IDLE
        ):
            self._idle.append(conn)
            return
        with contextlib.suppress(Exception):
            await conn.close()

    async def _attempt(self, action: str, run: Callable[[Conn], Awaitable[T]]) -> T:
        """``run(conn)`` on a pooled connection, once."""
        self._on_this_loop()
        assert self._slots is not None
        async with self._slots:
            conn = await self._take()
            reusable = False
            try:
                result = await run(conn)
                reusable = True
                return result
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise _Lost(self._db.error(action, exc)) from exc
                reusable = True  # the statement's own error; its transaction rolled back
                if isinstance(exc, _RETRYABLE):
                    raise _Lost(self._db.error(action, exc)) from exc
                raise self._db.error(action, exc) from exc
            finally:
                # Cancelled midway (a client went away), a call leaves its connection in
                # an unknown state: closed, not reused.
                await self._give_back(conn, reusable)

    async def _run(self, action: str, run: Callable[[Conn], Awaitable[T]]) -> T:
        """``run(conn)`` (one statement or transaction that may run again: a read, or a
        write that settles what its lost attempt did), again on a new connection while
        connections are lost, for up to ``reconnect_for`` seconds."""
        deadline = time.monotonic() + self._db.reconnect_for
        delay = _BACKOFF_FIRST
        while True:
            try:
                return await self._attempt(action, run)
            except _Lost as lost:
                if time.monotonic() + delay > deadline:
                    raise lost.error from lost
                log.warning("%s; running it again in %.1fs", lost.error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    # -- reads ----------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        """The stored job (a plain read), as ``PostgresJobBackend.get``."""
        if not findable(job_id, "job id"):
            return None

        async def run(conn: Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(q.GET_JOB, (job_id,))
            return await cur.fetchone()

        row = await self._run("read a job", run)
        return record_of(row) if row is not None else None

    # -- enqueue --------------------------------------------------------------------------

    async def put(
        self, records: Sequence[JobRecord], fresh: frozenset[str] = frozenset()
    ) -> list[tuple[JobRecord, bool]]:
        """``PostgresJobBackend.put``: new jobs stored with fresh ``seq`` values; an id
        stored already is returned as stored with False (and an id given twice is stored
        once). ``fresh`` is accepted for the contract's sake (no COPY path here). Jobs
        without a unique key only: AsyncJobQueue gives keyed ones to the blocking
        backend, whose ``put`` settles keys (``_put.py``)."""
        del fresh
        if any(r.unique_key is not None for r in records):
            raise ValueError("AsyncJobs.put takes jobs without a unique key")
        unique: dict[str, JobRecord] = {}
        for record in records:
            unique.setdefault(record.job_id, record)
        if not unique:
            return []
        if len(unique) == 1 and self._fsync:
            stored, new = await self._put_one(next(iter(unique.values())))
            return [(stored, new and i == 0) for i in range(len(records))]
        staged, inserted, existing = await self._put_many(unique)
        return put_outcomes(list(records), unique, staged, inserted, existing)

    async def _put_one(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """One job, ONE statement in autocommit (``ENQUEUE_ONE``), settled as
        ``PostgresJobBackend._put_one`` settles it when its answer is lost."""
        args = one_args(Jsonb([doc_of(record)]), record)
        lost: list[int | None] = []  # what the lost attempt knows of its insert: its seq

        async def run(conn: Conn) -> tuple[JobRecord, bool]:
            while True:
                first = not lost
                if first:
                    lost.append(None)  # sent: it may insert, its answer not yet back
                cur = await conn.execute(q.ENQUEUE_ONE, args)
                row = await cur.fetchone()
                if row is None:  # stored by a commit after this statement's snapshot
                    cur = await conn.execute(ONE_STORED_AGAIN, args[2:])
                    found = await cur.fetchone()
                    row = None if found is None else (False, *found)
                one_sent(row, lost, first)
                if row is not None:
                    break
                # Stored by another and deleted since (a prune, a clear): insert it now.
            return one_outcome(row, record, lost)

        return await self._run("enqueue a job", run)

    async def _put_many(
        self, unique: dict[str, JobRecord]
    ) -> tuple[dict[str, JobRecord], set[str], dict[str, JobRecord]]:
        """A batch in one transaction: the records staged (with their seq), the ids
        inserted and the stored records of the ids that existed, settled as
        ``PostgresJobBackend.put`` settles a COMMIT whose answer was lost."""
        lost: list[dict[str, JobRecord]] = []  # what the lost attempt inserted, by id

        async def run(
            conn: Conn,
        ) -> tuple[dict[str, JobRecord], set[str], dict[str, JobRecord]]:
            async with conn.transaction():
                if not self._fsync:
                    await conn.execute(q.UNSYNCED_COMMIT)
                n = len(unique)
                cur = await conn.execute(q.NEXT_SEQ_BLOCKS, (blocks_for(n),))
                seqs = seqs_of(await cur.fetchall(), n)
                staged = {
                    r.job_id: r.with_seq(s) for r, s in zip(unique.values(), seqs, strict=True)
                }
                docs = Jsonb([doc_of(r) for r in staged.values()])
                cur = await conn.execute(q.INSERT_NEW_JOBS, (docs,))
                inserted = {row[0] for row in await cur.fetchall()}
                if inserted:
                    await conn.execute(q.NOTIFY, (CHANNEL,))
                missing = [i for i in staged if i not in inserted]
                existing: dict[str, JobRecord] = {}
                if missing:
                    cur = await conn.execute(q.GET_JOBS, (missing,))
                    existing = {r.job_id: r for r in map(record_of, await cur.fetchall())}
                for job_id, stored in list(existing.items()) if lost else ():
                    mine = lost[0].get(job_id)
                    if mine and (mine.seq, mine.created) == (stored.seq, stored.created):
                        staged[job_id] = stored  # the lost attempt's insert: it landed
                        inserted.add(job_id)
                        del existing[job_id]
                lost[:] = [{job_id: staged[job_id] for job_id in inserted}]
            return staged, inserted, existing

        return await self._run("enqueue jobs", run)

    # -- finished jobs --------------------------------------------------------------------

    def listen_finished(self, callback: Callable[[str | None], None]) -> None:
        """Start (unless it runs) the task that calls ``callback(job_id)`` for each job of
        this schema that finishes, and ``callback(None)`` once it listens (again). Call
        from the event loop; :meth:`close` stops it."""
        self._on_this_loop()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(callback), name="jobledger-finished-listener"
            )

    async def _listen(self, callback: Callable[[str | None], None]) -> None:
        delay = _BACKOFF_FIRST
        while True:
            conn: Conn | None = None
            try:
                conn = await self._db.async_session("listen for finished jobs")
                cur = await conn.execute(q.CURRENT_SCHEMA)
                row = await cur.fetchone()
                schema = str(row[0]) if row else ""
                for statement in FINISHED_LISTENING:
                    await conn.execute(statement)
                delay = _BACKOFF_FIRST
                callback(None)  # whatever finished while no one listened
                async for note in conn.notifies():
                    if note.channel == FINISHED_CHANNEL:
                        for job_id in finished_ids(note.payload, schema):
                            callback(job_id)
            except (psycopg.Error, DatabaseError, OSError) as exc:
                shown = exc
                if isinstance(exc, psycopg.Error):
                    shown = self._db.error("listen for finished jobs", exc)
                log.warning(
                    "The listener for finished jobs lost its connection (%s); waits poll "
                    "meanwhile, reconnecting in %.1fs",
                    shown,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def close(self) -> None:
        """Stop the listener and close the idle connections (opened again on next use)."""
        listener, self._listener = self._listener, None
        here = self._loop is asyncio.get_running_loop()  # another loop's task is gone with it
        if listener is not None and here and not listener.done():
            listener.cancel()
            await asyncio.wait({listener})  # its session closed (a cancel of close() goes on)
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()
