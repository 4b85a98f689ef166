"""Connections to PostgreSQL: one per backend object behind a lock, and clear errors.

A backend object owns one connection (opened on first use, migrated then) and serialises
its threads on it with a re-entrant lock: simple and correct, and re-entrant because the
policy's ``change`` callbacks may call back into the backend (``retry`` asks ``next_seq``
inside a transition), which then runs in a savepoint of the same transaction.

Leases and worker heartbeats need connections of their own (a session-level advisory lock
dies with its session); :meth:`Database.session` opens those.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import conninfo

from . import is_postgres_url
from ._errors import DatabaseError
from ._migrate import migrate

__all__ = ["HOST", "Database", "lock_key", "redact"]

HOST = socket.gethostname()

# A dead client (a crashed machine rather than a killed process) is noticed by the server
# only through TCP keepalives: these make its session, and its advisory locks, go in about
# a minute instead of the kernel's default of hours. The URL may override them.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


def redact(url: str) -> str:
    """``url`` without its password (and without the query), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    user = f"{quote(parts.username, safe='')}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for ``parts`` (schema first, so that two schemas
    in one database never share a lock)."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Database:
    """The connection settings of one URL, and this backend object's connection."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        if not is_postgres_url(url):
            raise DatabaseError(f"not a PostgreSQL URL (postgresql://...): {redact(url)!r}")
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise DatabaseError(f"cannot read the PostgreSQL URL {redact(url)}: {exc}") from exc
        self._url = url
        self._password = str(params.get("password") or "")
        self.location = redact(url)
        self._where = (
            f"database {params.get('dbname') or '(default)'!s} on "
            f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        )
        self._params: dict[str, Any] = dict(_KEEPALIVES)
        self._params.update(connect_timeout=max(1, round(connect_timeout)))
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self.schema = ""

    # -- errors ---------------------------------------------------------------------------

    def error(self, action: str, exc: BaseException) -> DatabaseError:
        """A DatabaseError for ``exc`` naming where, with any password scrubbed out."""
        text = " ".join(str(exc).split()) or type(exc).__name__  # libpq's are multi-line
        if self._password:
            text = text.replace(self._password, "***")
        hint = (
            "check that the server runs and accepts connections, and the URL's host, port, "
            "database, user and password"
            if isinstance(exc, psycopg.OperationalError)
            else "the statement was rolled back; nothing was changed"
        )
        return DatabaseError(f"could not {action} ({self._where}): {text}; {hint}")

    # -- connections ----------------------------------------------------------------------

    def session(self, purpose: str) -> psycopg.Connection[Any]:
        """A new autocommit connection of its own (for a lease or a heartbeat)."""
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                application_name=f"jobledger {purpose} pid {os.getpid()} on {HOST}"[:63],
                **self._params,
            )
        except psycopg.Error as exc:
            raise self.error("connect to PostgreSQL", exc) from exc
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():
            # Inherited through fork(): the socket is the parent's session. Forget it
            # without closing it (psycopg does not close a connection of another pid).
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            conn = self.session("backend")
            try:
                migrate(conn)
                row = conn.execute("SELECT current_schema()").fetchone()
            except psycopg.Error as exc:
                conn.close()
                raise self.error("prepare the jobledger tables", exc) from exc
            self.schema = str(row[0]) if row and row[0] else ""
            self._conn = conn
        return self._conn

    @contextlib.contextmanager
    def transaction(
        self, action: str, *, durable: bool = True
    ) -> Iterator[psycopg.Connection[Any]]:
        """This object's connection inside a transaction (a savepoint when nested).

        ``durable=False`` commits without waiting for the WAL flush (survives a crash of
        this process, not of the server's machine), as ``durability="flush"`` promises.
        A psycopg error becomes a DatabaseError; a lost connection is reopened next time.
        """
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    if not durable:
                        conn.execute("SET LOCAL synchronous_commit TO off")
                    yield conn
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    self._conn = None
                raise self.error(action, exc) from exc
            except psycopg.Error as exc:
                raise self.error(action, exc) from exc

    def ensure_schema(self) -> str:
        """Connect (and migrate) if not yet done; the current schema's name."""
        with self._lock:
            self._connection()
            return self.schema

    def close(self) -> None:
        """Close this object's connection (reopened on next use)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
