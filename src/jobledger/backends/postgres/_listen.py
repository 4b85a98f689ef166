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
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import psycopg

from . import _queries as q
from ._db import Database
from ._queries import CANCEL_CHANNEL, CHANNEL

__all__ = ["CANCEL_CHANNEL", "CHANNEL", "Listener", "notify"]

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


class Listener:
    """Calls ``callback()`` on each wake-up for this schema, and ``on_cancel()`` on each
    cancel request, from a thread of its own, until :meth:`stop`."""

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
                conn.execute(q.NOTIFY_PAYLOAD, (CHANNEL, _STOPPING))
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
                    "The listener for new jobs lost its connection (%s); workers poll "
                    "meanwhile, reconnecting in %.1fs",
                    self._db.error("listen for new jobs", exc)
                    if isinstance(exc, psycopg.Error)
                    else exc,
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            except Exception as exc:  # the database said no (a DatabaseError...): retry later
                self.connected.clear()
                log.warning("The listener for new jobs failed (%s); workers poll meanwhile", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                self._close()

    def _listen(self) -> None:
        conn = self._db.session("listen for new jobs")
        with self._guard:
            self._conn = conn
        row = conn.execute(q.CURRENT_SCHEMA).fetchone()
        schema = str(row[0]) if row else ""
        conn.execute(q.LISTEN)
        if self._on_cancel is not None:
            conn.execute(q.LISTEN_CANCELS)
        self.connected.set()
        self._callback()  # whatever was enqueued while no one listened
        if self._on_cancel is not None:
            self._on_cancel()  # and whatever was cancelled
        while not self._stop.is_set():
            for note in conn.notifies(timeout=_POLL):
                if note.payload == schema:
                    if note.channel == CANCEL_CHANNEL:
                        if self._on_cancel is not None:
                            self._on_cancel()
                    else:
                        self._callback()
                if self._stop.is_set():
                    break

    def _close(self) -> None:
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
