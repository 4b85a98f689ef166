"""A PostgreSQL worker's lease and its heartbeat thread.

A worker is alive while its row in ``jobledger_workers`` has ``lease_until`` (server time)
in the future. The heartbeat, on a connection of its own, pushes that forward, and with it
the leases of the jobs still Running under the worker (see ``jobs.py``); a stopped worker
deletes its row, so its jobs are recovered at once.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psycopg

from ..._errors import JobLedgerError
from . import _queries as q
from ._db import HOST, Database

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
            row = self._conn.execute(
                q.RENEW_WORKER, (self._worker, os.getpid(), HOST, self._since, self._lease)
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
