"""Task sets in PostgreSQL: a row per (account, type, date) in ``jobledger_tasksets``.

- ``update`` is SELECT ... FOR UPDATE, the change in Python, then the write, in ONE
  transaction: concurrent writers (threads or processes) queue up on the row lock and
  each applies its change to the latest record, so no update is lost. A set that has no
  row yet is created with INSERT ... ON CONFLICT DO NOTHING; losing that race retries.
- The run lease is a session-level advisory lock taken on a connection of its own, held by
  the lease object: it dies with its holder's session (process exit, SIGKILL, a lost
  connection), never with a timestamp guess. Its holder writes its pid, host and since
  into ``jobledger_leases``; a row counts only while ``pg_locks`` shows its session still
  holding the lock, so ``holder`` never takes the lock and a stale row is harmless.
- A record whose JSON is not a task set is moved to ``jobledger_set_aside`` with a
  warning and the set starts empty (the policy keeps what this process completed).
- A server restart: ``update`` runs again on a new connection. After a COMMIT of unknown
  outcome the rerun, under the row lock, first reads the row back: the very record the
  lost save wrote (its lastUpdate stamp and all) means that save landed and is the result,
  ``change`` not applied again; anything else, and it saves as usual. (Not
  ``txid_status``: a server that crashed during the COMMIT reuses the lost transaction's
  xid, and another transaction's commit would read as the lost save's.)
  The run lease dies with its session; rather than fail a run that merely outlived a
  restart, the holder RE-TAKES it on its next write (``_PgLease.ensure``, a round trip on
  the lease's session per update): on a new session, waiting up to ``reconnect_for`` (its
  old session may linger until TCP keepalives end it, after a network cut). If another
  process took it in between, that write raises AlreadyRunning naming it, and nothing is
  written: two runs never both write.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._clock import Clock, SystemClock, iso_utc
from ..._errors import AlreadyRunning, LeaseHolder
from ..._taskset_record import RunLease, TaskSetKey, TaskSetRecord, for_key
from .._contract import Finding, Lease
from . import _queries as q
from ._db import HOST, ConnectionLost, Database, lock_key, reconnecting, stored_as
from ._errors import DatabaseError

__all__ = ["PostgresTaskSetBackend"]

log = logging.getLogger("jobledger")

# How long a contender looks for the holder's row, which is written just after the lock is
# taken (a holder caught in between would otherwise be "an unknown process").
_HOLDER_GRACE = 1.0


class _Raced(Exception):
    """Another writer created the row first: run the update again on its record."""


class _PgLease:
    """A held run lease: an advisory lock on a connection of its own."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        key: TaskSetKey,
        lock: int,
        retake: Callable[[], psycopg.Connection[Any]],
        held: dict[TaskSetKey, _PgLease],
    ) -> None:
        self._conn: psycopg.Connection[Any] | None = conn
        self._key = key
        self._lock = lock
        self._pid = os.getpid()
        self._retake = retake
        self._held = held
        self._released = False
        held[key] = self

    def ensure(self) -> None:
        """Before a write: the lock is still ours, or re-taken on a new session (it was
        lost with the old one, e.g. a server restart); AlreadyRunning if another took it
        (and again at every later write until re-taken: a lost lease never writes)."""
        if self._released or self._pid != os.getpid():
            return  # released, or a fork()ed child's copy: not this holder's business
        conn = self._conn
        if conn is not None:
            try:
                conn.execute(q.PING)
                return
            except psycopg.Error:
                conn.close()
            self._conn = None
        try:
            self._conn = self._retake()  # AlreadyRunning when another holds it now
        except DatabaseError as exc:
            # The server is not back yet: the caller's retrying waits with backoff.
            raise ConnectionLost(str(exc), commit_unknown=False) from exc
        log.warning("Re-took the run lease of %s after its session was lost", _describe(self._key))

    def release(self) -> None:
        """Delete the holder row, unlock and close the session. Idempotent."""
        if self._released or self._pid != os.getpid():
            return  # a fork()ed child must not touch its parent's session
        self._released = True
        if self._held.get(self._key) is self:
            del self._held[self._key]
        conn, self._conn = self._conn, None
        if conn is None:
            return  # lost and never re-taken: nothing of it is left on the server
        try:
            conn.execute(q.DELETE_MY_LEASE, self._key)
            conn.execute(q.ADVISORY_UNLOCK, (self._lock,))
        except psycopg.Error:
            pass  # the session is gone, and its lock with it; the row is merely stale
        finally:
            conn.close()


class PostgresTaskSetBackend:
    """Task-set records in PostgreSQL; see the module docstring.

    ``PostgresTaskSetBackend(url, fsync=True, clock=None)``: ``url`` is a
    ``postgresql://`` URL (its ``options=-csearch_path=...`` picks the schema);
    ``fsync=False`` commits without waiting for the WAL flush (``durability="flush"``).
    The tables are created or migrated on first use. ``reconnect_for``: how long (seconds)
    a transaction waits, with backoff, for a lost server to come back.
    """

    def __init__(
        self,
        url: str,
        *,
        fsync: bool = True,
        clock: Clock | None = None,
        connect_timeout: float = 10.0,
        reconnect_for: float = 60.0,
        read_only: bool = False,
    ) -> None:
        # Read only: never migrates (SchemaMissing instead), never sets a bad row aside.
        self.read_only = read_only
        self._db = Database(
            url,
            connect_timeout=connect_timeout,
            reconnect_for=reconnect_for,
            migrate=not read_only,
        )
        self.location = self._db.location
        self._fsync = fsync
        self._clock = clock or SystemClock()
        # The leases held through this object, checked (re-taken) before each write.
        self._held: dict[TaskSetKey, _PgLease] = {}
        # What load_range last parsed per set, with the row's JSON text then.
        self._texts: dict[TaskSetKey, tuple[str, TaskSetRecord]] = {}

    def close(self) -> None:
        """Close the connection (reopened on next use). Held leases stay held."""
        self._db.close()

    # -- load / update --------------------------------------------------------------------

    def _parse(self, doc: object, key: TaskSetKey) -> TaskSetRecord:
        return for_key(TaskSetRecord.from_json(doc), key, "row")

    def _set_aside(
        self, conn: psycopg.Connection[Any], key: TaskSetKey, doc: object, reason: str
    ) -> None:
        conn.execute(q.SET_ASIDE, ("taskset", "/".join(key), Jsonb(doc), reason))
        conn.execute(q.DELETE_TASKSET, key)
        log.warning(
            "Task set %s of %s for %s in %s is not a valid record (%s); moved it to "
            "jobledger_set_aside and starting it empty",
            key.type,
            key.account,
            key.date,
            self.location,
            reason,
        )

    @reconnecting
    def load(self, key: TaskSetKey) -> TaskSetRecord | None:
        """The stored record (a plain read, no lock); a bad one is set aside."""
        with self._db.transaction("read a task set") as conn:
            row = conn.execute(q.READ_TASKSET, key).fetchone()
            if row is None:
                return None
            try:
                return self._parse(row[0], key)
            except ValueError as exc:
                if self.read_only:
                    log.warning(
                        "Task set %s of %s for %s in %s is not a valid record (%s); left "
                        "out. Nothing was changed: run `jobledger doctor` to set it aside.",
                        key.type,
                        key.account,
                        key.date,
                        self.location,
                        exc,
                    )
                    return None
                self._set_aside(conn, key, row[0], str(exc))
                return None

    def update(
        self, key: TaskSetKey, change: Callable[[TaskSetRecord | None], TaskSetRecord]
    ) -> TaskSetRecord:
        """Read under a row lock, apply ``change``, write: one transaction."""
        # What the save whose COMMIT was cut off wrote, if any (each run is a new save).
        lost: list[TaskSetRecord] = []

        def run() -> TaskSetRecord:
            held = self._held.get(key)
            if held is not None:
                held.ensure()
            while True:
                try:
                    return self._update_once(key, change, lost)
                except _Raced:
                    continue  # the row exists now: the next round locks it

        return self._db.retrying(run)

    def _update_once(
        self,
        key: TaskSetKey,
        change: Callable[[TaskSetRecord | None], TaskSetRecord],
        lost: list[TaskSetRecord],
    ) -> TaskSetRecord:
        with self._db.transaction("save a task set", durable=self._fsync) as conn:
            row = conn.execute(q.LOCK_TASKSET, key).fetchone()
            if row is not None and lost and stored_as(row[0], lost[0].to_json()):
                # The lost save landed: its record is the result, not ``change`` applied
                # again to its own result.
                return lost[0]
            current = None
            if row is not None:
                try:
                    current = self._parse(row[0], key)
                except ValueError as exc:
                    self._set_aside(conn, key, row[0], str(exc))
            record = change(current)
            values = (
                Jsonb(record.to_json()),
                len(record.completed),
                len(record.remaining),
                record.last_update,
            )
            if current is not None:
                conn.execute(q.UPDATE_TASKSET, values + tuple(key))
            else:
                created = conn.execute(q.INSERT_TASKSET, tuple(key) + values).fetchone()
                if created is None:
                    raise _Raced  # rolls this transaction back
            lost[:] = [record]  # if this COMMIT is cut off in its turn
        return record

    # -- leases ---------------------------------------------------------------------------

    def _lock_key(self, key: TaskSetKey) -> int:
        return lock_key(self._db.ensure_schema(), "taskset", *key)

    def lease(self, key: TaskSetKey, since: str, wait: bool | float) -> Lease:
        """Take the set's advisory lock on a new session; AlreadyRunning names the holder."""
        lock = self._lock_key(key)
        conn = self._take(key, lock, since, wait)
        return _PgLease(
            conn,
            key,
            lock,
            lambda: self._take(key, lock, since, self._db.reconnect_for),
            self._held,
        )

    def _take(
        self, key: TaskSetKey, lock: int, since: str, wait: bool | float
    ) -> psycopg.Connection[Any]:
        """A new session holding the set's lock, its holder row written."""
        conn = self._db.session("lease")
        try:
            if not self._acquire(conn, lock, wait):
                conn.close()
                holder = self._holder(key, _HOLDER_GRACE) or LeaseHolder(None, None, None)
                raise AlreadyRunning(_describe(key), holder, f"{self.location}, advisory lock")
            with conn.transaction():
                conn.execute(q.TAKE_LEASE, (*key, lock, os.getpid(), HOST, since))
        except psycopg.Error as exc:
            conn.close()
            raise self._db.error("take a task set's run lease", exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _acquire(self, conn: psycopg.Connection[Any], lock: int, wait: bool | float) -> bool:
        if wait is False or (wait is not True and float(wait) <= 0):
            row = conn.execute(q.TRY_ADVISORY_LOCK, (lock,)).fetchone()
            return bool(row and row[0])
        if wait is not True:
            # lock_timeout bounds the wait of pg_advisory_lock (a heavyweight lock).
            ms = max(1, round(float(wait) * 1000))
            conn.execute(q.set_lock_timeout(ms))
        try:
            conn.execute(q.ADVISORY_LOCK, (lock,))
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            if wait is not True and not conn.closed:
                conn.execute(q.RESET_LOCK_TIMEOUT)
        return True

    @reconnecting
    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """The live holder, from its row checked against pg_locks (takes no lock)."""
        return self._holder(key, 0.0)

    def _holder(self, key: TaskSetKey, grace: float) -> LeaseHolder | None:
        deadline = time.monotonic() + grace
        while True:
            with self._db.transaction("read a task set's lease holder") as conn:
                row = conn.execute(q.TASKSET_HOLDER, key).fetchone()
            if row is not None:
                return LeaseHolder(row[0], row[1], row[2])
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    # -- listing and maintenance ----------------------------------------------------------

    @reconnecting
    def keys(self, account: str | None = None) -> Iterator[TaskSetKey]:
        """Every stored set's key (of ``account`` if given)."""
        query = q.TASKSET_KEYS
        params: tuple[str, ...] = ()
        if account is not None:
            query, params = q.TASKSET_KEYS_OF_ACCOUNT, (account,)
        with self._db.transaction("list task sets") as conn:
            rows = conn.execute(query, params).fetchall()
        return iter([TaskSetKey(a, t, d.isoformat()) for a, t, d in rows])

    @reconnecting
    def load_range(self, first: str, last: str, account: str | None = None) -> list[TaskSetRecord]:
        """The records dated ``first`` to ``last``, in one query; a bad row is handed to
        :meth:`load`, which reports it (and sets it aside unless read only). A record
        whose JSON text is the one this object parsed last time is not parsed again: a
        page asked again costs the query, and parsing what changed."""
        query = q.TASKSET_RANGE
        params: tuple[str, ...] = (first, last)
        if account is not None:
            query, params = q.TASKSET_RANGE_OF_ACCOUNT, (first, last, account)
        with self._db.transaction("read task sets") as conn:
            rows = conn.execute(query, params).fetchall()
        out = []
        for account_, type_, date, text in rows:
            key = TaskSetKey(account_, type_, date.isoformat())
            seen = self._texts.get(key)
            if seen is not None and seen[0] == text:
                out.append(seen[1])
                continue
            try:
                record = self._parse(json.loads(text), key)
            except ValueError:
                bad = self.load(key)
                if bad is not None:
                    out.append(bad)
                continue
            self._texts[key] = (text, record)
            out.append(record)
        return out

    @reconnecting
    def leases(self) -> list[RunLease]:
        """Every holder row, alive while its session still holds the advisory lock (a
        session ends with its process, SIGKILL included, or its lost connection)."""
        with self._db.transaction("list the run leases") as conn:
            rows = conn.execute(q.LEASES).fetchall()
        return [
            RunLease(TaskSetKey(a, t, d.isoformat()), LeaseHolder(pid, host, since), bool(held))
            for a, t, d, pid, host, since, held in rows
        ]

    def delete(self, key: TaskSetKey) -> None:
        """Delete a set's row, under its lease so that no live run loses it."""
        lease = self.lease(key, iso_utc(self._clock.now()), wait=False)
        try:
            with self._db.transaction("delete a task set") as conn:
                conn.execute(q.DELETE_TASKSET, key)
        finally:
            lease.release()

    @reconnecting
    def usage(self) -> tuple[int, int]:
        """(bytes, rows) of the task-set records."""
        with self._db.transaction("measure the task sets") as conn:
            row = conn.execute(q.SIZE_OF_TASKSETS).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    @reconnecting
    def check(self, repair: bool) -> list[Finding]:
        """Validate every record; report set-aside rows and stale lease rows."""
        findings = []
        with self._db.transaction("check the task sets") as conn:
            rows = conn.execute(q.TASKSET_ROWS)
            for account, type_, date, doc in rows.fetchall():
                key = TaskSetKey(account, type_, date.isoformat())
                try:
                    self._parse(doc, key)
                except ValueError as exc:
                    if repair:
                        self._set_aside(conn, key, doc, str(exc))
                    findings.append(Finding("corrupt", "/".join(key), str(exc), repair))
            for account, type_, date in conn.execute(q.STALE_LEASES).fetchall():
                key = TaskSetKey(account, type_, date.isoformat())
                if repair:
                    conn.execute(q.DELETE_LEASE, key)
                findings.append(
                    Finding("stale-lease", "/".join(key), "lease row of a dead session", repair)
                )
            for (where,) in conn.execute(q.SET_ASIDE_KEYS):
                findings.append(
                    Finding(
                        "note",
                        f"jobledger_set_aside: {where}",
                        "a bad record set aside earlier; inspect it, then delete it",
                        False,
                    )
                )
        return findings


def _describe(key: TaskSetKey) -> str:
    return f"task set {key.type!r} of account {key.account!r} for {key.date}"
