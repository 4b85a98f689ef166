"""A PostgreSQL worker's lease and its heartbeat thread.

A worker is alive while its row in ``jobledger_workers`` has ``lease_until`` (server time)
in the future. The heartbeat, on a connection of its own, pushes that forward, and with it
the leases of the jobs still Running under the worker (see ``jobs.py``); a stopped worker
deletes its row, so its jobs are recovered at once.

The heartbeat's session also holds a session-level advisory lock on the worker's key
(``lock_key`` in its row), which the server drops when the session ends: a worker whose
process dies is known dead as soon as its connection closes, and the next claim of any
live worker (or ``recover``) gives its Running jobs back, before its lease runs out. The
lease stays for what a session cannot tell at once (a machine that vanished, a
partition); the server's TCP keepalives on this session end a vanished peer's session
within the lease.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psycopg

from ..._errors import JobLedgerError
from . import _queries as q
from ._db import HOST, SERVER_KEEPALIVES, Database, lock_key

__all__ = ["WorkerLease"]

log = logging.getLogger("jobledger")


class WorkerLease:
    """A registered worker: its heartbeat thread and connection; released on stop."""

    def __init__(
        self, db: Database, worker: str, since: str, lease: float, heartbeat: float
    ) -> None:
        self._db = db
        self._worker = worker
        self._since = since
        self._lease = lease
        self._heartbeat = heartbeat
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._registered = False
        self._key = lock_key(db.ensure_schema(), "worker", worker)
        self._locked = False  # whether this session holds the worker's lock
        self._conn: psycopg.Connection[Any] | None = db.session("worker heartbeat")
        self._guard = threading.Lock()
        try:
            self._renew()
        except psycopg.Error as exc:
            self._conn.close()
            raise db.error(f"register worker {worker}", exc) from exc
        self._thread = threading.Thread(
            target=self._beat, name=f"jobledger-heartbeat-{worker}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        """Push the lease forward; recreate the row if it was removed (presumed dead)."""
        with self._guard:
            if self._conn is None or self._conn.closed:
                if self._stop.is_set():
                    return
                self._conn = self._db.session("worker heartbeat")
                self._locked = False
            if not self._locked:
                self._take_lock(self._conn)
            # The key is written only while this session holds the lock: a row with a key
            # and no lock reads as a dead worker.
            key = self._key if self._locked else None
            row = self._conn.execute(
                q.RENEW_WORKER,
                (self._worker, os.getpid(), HOST, self._since, self._lease, key),
            ).fetchone()
            # The leases of this worker's jobs: fenced by worker and status, so only the
            # jobs still Running under it are renewed (never one recovered meanwhile). A
            # lease that already ran out is not renewed either: that job is being, or has
            # been, given to another worker, whose result is then the one recorded. Rows
            # another transaction holds are skipped, not waited for: this worker's own
            # completions lock its rows in another order, and waiting deadlocked the two
            # (a row being completed needs no lease; any other is renewed next beat).
            self._conn.execute(q.RENEW_JOB_LEASES, (self._lease, self._worker))
        recreated = bool(row and row[0]) and self._registered
        self._registered = True
        if recreated:
            log.warning(
                "Worker %s had been presumed dead (its lease ran out); its Running jobs "
                "may have been recovered, and their results will be refused",
                self._worker,
            )

    def _take_lock(self, conn: psycopg.Connection[Any]) -> None:
        """Set the server's keepalives of this new session and try to take the worker's
        lock: not waited for, since only an old session of this very worker (not yet
        ended by the server) can hold it; then the next beat tries again, and meanwhile
        the lease alone tells."""
        conn.execute(q.SERVER_KEEPALIVES, SERVER_KEEPALIVES)
        row = conn.execute(q.TRY_ADVISORY_LOCK, (self._key,)).fetchone()
        self._locked = bool(row and row[0])

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat):
            try:
                self._renew()
            except (psycopg.Error, JobLedgerError) as exc:
                # Keep trying: the lease outlives a few missed beats (a brief outage).
                # A server restart lands here: the next beat reconnects (a new session).
                log.warning(
                    "Heartbeat of worker %s failed, reconnecting at the next beat: %s",
                    self._worker,
                    self._db.error("renew the worker's lease", exc)
                    if isinstance(exc, psycopg.Error)
                    else exc,
                )
                with self._guard:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    self._locked = False

    def release(self) -> None:
        """Stop the heartbeat and delete the worker's row. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._pid != os.getpid():
            return  # a fork()ed child: the worker is the parent's
        self._thread.join()
        with self._guard:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            try:
                conn.execute(q.DELETE_WORKER, (self._worker,))
            except psycopg.OperationalError:
                # The session may have died with a server restart since the last beat:
                # once more on a new one, or the row would read alive until its lease ends.
                conn.close()
                conn = self._db.session("worker release")
                conn.execute(q.DELETE_WORKER, (self._worker,))
        except (psycopg.Error, JobLedgerError) as exc:
            log.warning("Could not remove worker %s's row: %s", self._worker, exc)
        finally:
            conn.close()
