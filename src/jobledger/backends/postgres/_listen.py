"""Wake-ups for idle workers: LISTEN/NOTIFY on a connection of its own.

Every transaction that makes a job claimable (an enqueue, a retry, a requeue, a
recovery) sends one ``NOTIFY jobledger_jobs`` whose payload is the schema of the queue's
tables, so that queues in other schemas of the same database do not wake each other's
workers for nothing. A :class:`Listener` holds a dedicated autocommit session (never a
pooled one: a LISTEN lives and dies with its session, which transaction-level poolers
hand to others) and calls back on each notification of its schema.

A cancel asked of a Running job (``cancel_requested_at`` set) sends ``NOTIFY
jobledger_cancels``, with the schema as payload too: a listener given ``on_cancel`` listens
on that channel as well, on the same session, and calls it back; the worker then asks
which of its running jobs were asked to stop (one query).

The listener only speeds things up: workers poll as well, so a lost listener (a server
restart, a dropped session, a proxy) only slows them to their poll interval, never stalls
them. It reconnects with backoff, and calls back once after every (re)connection, since
notifications sent while it was away are lost.

Finished jobs have a channel of their own, ``jobledger_finished`` (:data:`FINISHED_CHANNEL`,
so that completions never wake idle workers): while anyone listens there, every
transaction that makes jobs Completed, Failed or Cancelled sends ONE notification,
``[schema, [job ids]]`` as JSON (:func:`notify_finished`), or ``[schema, null]`` when the
ids would not fit in a payload.
A :class:`FinishListener` calls back with each job id (None: any job may have finished,
read again), for ``JobQueue.wait``.

A NOTIFY costs the commit that sends it a cluster-wide lock, held through its WAL flush
(PostgreSQL queues notifications in commit order), so finishing transactions send none
while no one listens for finished jobs. Each listening session holds a mark, a shared
advisory lock of its schema (``LISTENING_FOR_FINISHED``), for as long as it listens; a
finishing transaction looks for a mark (in ``pg_locks``) and notifies only if one is
held. So that no finish falls between a transaction's look and a new listener's mark,
a finishing transaction takes a second lock, the barrier, shared, before it looks, until
it ends; a new listener, once it LISTENs and holds its mark, takes the barrier exclusive
and lets it go at once (:func:`start_listening_for_finished`): that waits for every
transaction that may have looked before the mark was held, and only then does the
listener call back (None), so its waits read their jobs again after those commits. A
transaction that looks after the mark is held sees it and notifies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Collection

import psycopg

from . import _queries as q
from ._db import Database
from ._queries import CANCEL_CHANNEL, CHANNEL, FINISHED_CHANNEL

__all__ = [
    "CANCEL_CHANNEL",
    "CHANNEL",
    "FINISHED_CHANNEL",
    "FINISHED_LISTENING",
    "FinishListener",
    "Listener",
    "finished_ids",
    "notify",
    "notify_finished",
    "start_listening_for_finished",
]

log = logging.getLogger("jobledger")

_POLL = 0.5  # seconds between looks at the stop flag while waiting for notifications
_STOPPING = ""  # the payload that wakes a stopping listener: no schema has an empty name
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


def notify(conn: psycopg.Connection[object], channel: str = CHANNEL) -> None:
    """Send the wake-up (or, on CANCEL_CHANNEL, the news of a cancel request), delivered
    when (and only if) the current transaction commits. PostgreSQL folds identical
    notifications of one transaction into one."""
    conn.execute(q.NOTIFY, (channel,))


def notify_finished(conn: psycopg.Connection[object], job_ids: Collection[str]) -> None:
    """Send the finished jobs' notification (one for all of ``job_ids``) if anyone
    listens for finished jobs of this schema; delivered when (and only if) the current
    transaction commits."""
    conn.execute(q.NOTIFY_FINISHED, (FINISHED_CHANNEL, sorted(job_ids)))


#: What a listener for finished jobs runs on its session, in this order.
FINISHED_LISTENING = (
    q.LISTEN_FINISHED,
    q.LISTENING_FOR_FINISHED,
    q.FINISHED_BARRIER,
    q.FINISHED_BARRIER_DONE,
)


def start_listening_for_finished(conn: psycopg.Connection[object]) -> None:
    """On a listener's own autocommit session: LISTEN for finished jobs, hold the mark
    that makes finishing transactions notify, and wait behind the barrier for those that
    looked for a mark before (see the module docstring)."""
    for statement in FINISHED_LISTENING:
        conn.execute(statement)


def finished_ids(payload: str, schema: str) -> list[str | None]:
    """The job ids a finished-jobs notification names for ``schema``: ``[None]`` when it
    names none (any job may have finished), ``[]`` when it is another schema's, or not a
    notification of finished jobs at all (a stopping listener's empty payload)."""
    try:
        note = json.loads(payload)
    except ValueError:
        return []
    if not (isinstance(note, list) and len(note) == 2 and note[0] == schema):
        return []
    ids = note[1]
    if not isinstance(ids, list):
        return [None]
    return [i for i in ids if isinstance(i, str)]


class Listener:
    """Calls ``callback()`` on each wake-up for this schema, and ``on_cancel()`` on each
    cancel request, from a thread of its own, until :meth:`stop`."""

    #: What it listens for, in its session's name and its messages.
    what = "new jobs"
    channel = CHANNEL

    def __init__(
        self,
        db: Database,
        callback: Callable[[], None],
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._callback = callback
        self._on_cancel = on_cancel
        self._stop = threading.Event()
        self._conn: psycopg.Connection[object] | None = None
        self._guard = threading.Lock()
        self.connected = threading.Event()  # set while listening (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="jobledger-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the session. Idempotent."""
        self._stop.set()
        if self._thread is threading.current_thread():
            return
        if self.connected.is_set() and not self._db.in_transaction():
            # The thread waits in notifies() for up to _POLL: a notification of its own
            # (a payload no listener acts on) ends the wait now. A worker that stops
            # otherwise pays up to half a second at the end of every run.
            with (
                contextlib.suppress(Exception),
                self._db.transaction("wake the listener to stop", durable=False) as conn,
            ):
                conn.execute(q.NOTIFY_PAYLOAD, (self.channel, _STOPPING))
        self._thread.join()

    def _run(self) -> None:
        delay = _BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                self._listen()
                delay = _BACKOFF_FIRST
            except (psycopg.Error, OSError) as exc:
                self.connected.clear()
                log.warning(
                    "The listener for %s lost its connection (%s); polling meanwhile, "
                    "reconnecting in %.1fs",
                    self.what,
                    self._db.error(f"listen for {self.what}", exc)
                    if isinstance(exc, psycopg.Error)
                    else exc,
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            except Exception as exc:  # the database said no (a DatabaseError...): retry later
                self.connected.clear()
                log.warning("The listener for %s failed (%s); polling meanwhile", self.what, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                self._close()

    def _listen(self) -> None:
        conn = self._db.session(f"listen for {self.what}")
        with self._guard:
            self._conn = conn
        row = conn.execute(q.CURRENT_SCHEMA).fetchone()
        schema = str(row[0]) if row else ""
        self._start(conn)
        self.connected.set()
        self._connected()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=_POLL):
                self._heard(note.channel, note.payload, schema)
                if self._stop.is_set():
                    break

    def _start(self, conn: psycopg.Connection[object]) -> None:
        """LISTEN on this listener's channel (and for cancel requests, when asked to)."""
        conn.execute(q.LISTEN)
        if self._on_cancel is not None:
            conn.execute(q.LISTEN_CANCELS)

    def _connected(self) -> None:
        """Listening (again): act on whatever was sent while no one listened."""
        self._callback()
        if self._on_cancel is not None:
            self._on_cancel()  # and whatever was cancelled meanwhile

    def _heard(self, channel: str, payload: str, schema: str) -> None:
        """One notification: a wake-up (or a cancel request) of this schema calls back."""
        if payload != schema:
            return
        if channel == CANCEL_CHANNEL:
            if self._on_cancel is not None:
                self._on_cancel()
        else:
            self._callback()

    def _close(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class FinishListener(Listener):
    """Calls ``callback(job_id)`` for each job of this schema that finished (Completed,
    Failed, Cancelled), and ``callback(None)`` when it cannot tell which (after every
    (re)connection, and for a notification too long to name them)."""

    what = "finished jobs"
    channel = FINISHED_CHANNEL

    def __init__(self, db: Database, callback: Callable[[str | None], None]) -> None:
        self._on_finished = callback
        super().__init__(db, lambda: callback(None))

    def _start(self, conn: psycopg.Connection[object]) -> None:
        start_listening_for_finished(conn)

    def _heard(self, channel: str, payload: str, schema: str) -> None:
        for job_id in finished_ids(payload, schema):
            self._on_finished(job_id)
