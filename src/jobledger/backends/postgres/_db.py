"""Connections to PostgreSQL: one per backend object behind a lock, and clear errors.

A backend object owns one connection (opened on first use, migrated then) and serialises
its threads on it with a re-entrant lock: simple and correct, and re-entrant because the
policy's ``change`` callbacks may call back into the backend (``retry`` asks ``next_seq``
inside a transition), which then runs in a savepoint of the same transaction.

Leases and worker heartbeats need connections of their own (a session-level advisory lock
dies with its session); :meth:`Database.session` opens those.

Surviving a server restart: every backend transaction is all-or-nothing, so one that lost
its connection before COMMIT was sent left nothing behind and is run again, as a whole, on a
new connection (:func:`reconnecting`, :meth:`Database.retrying`), with exponential backoff
(0.1 s doubling to 5 s) for up to ``reconnect_for`` seconds (default 60), each reconnect
logged at WARNING with host and database (never the password). A connection lost DURING
COMMIT leaves the outcome unknown (:class:`ConnectionLost` ``commit_unknown``): the caller
either is idempotent (a read) and simply runs again, or settles it by reading back the rows
that transaction wrote (:func:`stored_as`): found as it wrote them, the lost commit landed
and its result stands; not found, it runs again (a claim passes a ``settled`` check; a put,
a transition and a task-set save look, inside their rerun and under its row locks, for what
the lost attempt wrote). It is never blindly re-applied, and never settled by asking
``txid_status``: a server that crashed during the COMMIT forgets the transaction with its
xid and hands that xid to a new transaction, whose commit would then read as the lost one's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import conninfo

from ..._errors import ConfigError
from ..._faults import point
from ..._json import encode_compact
from ..._location import classify
from ..._redact import redact_text, redact_url, scrub, url_secrets
from .._identity import HOST
from . import _queries as q
from . import is_postgres_url
from ._errors import DatabaseError, SchemaMissing, SchemaOutdated
from ._migrate import applied_versions, migrate, migrations

__all__ = [
    "HOST",
    "SERVER_KEEPALIVES",
    "ConnectionLost",
    "Database",
    "TransactionAborted",
    "lock_key",
    "reconnecting",
    "redact",
    "shareable",
    "stored_as",
]

log = logging.getLogger("jobledger")

P = ParamSpec("P")
T = TypeVar("T")

# Reconnect backoff: first wait, ceiling; the total is the Database's ``reconnect_for``.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0

# A dead peer (a crashed machine rather than a killed process) is noticed only through TCP
# keepalives: these make a vanished server noticed, and (set on the server's side of a
# worker's heartbeat session, see _heartbeat.py) a vanished worker's session and its
# advisory locks end, in about 5 s, within the worker's lease, instead of the kernel's
# default of hours. The URL may override the client's side.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "3",
}

#: The server's side of a worker's heartbeat session: idle, interval, count (as text).
SERVER_KEEPALIVES = (
    _KEEPALIVES["keepalives_idle"],
    _KEEPALIVES["keepalives_interval"],
    _KEEPALIVES["keepalives_count"],
)


def redact(url: str) -> str:
    """``url`` without its password (and without the query), for messages."""
    return redact_url(url)


# A query key that may carry a secret: password, sslpassword, oauth_client_secret...
_SECRET_KEY = re.compile(r"(?i)(password|secret)")


def shareable(url: str) -> str:
    """``url`` without its password (neither in the user part nor as a ``password``
    query parameter) but with the rest of its query (``options=-csearch_path=...`` picks
    the schema): a URL a message can tell the user to run a command with."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return redact(url)
    if ":" in host:
        host = f"[{host}]"
    user = f"{quote(parts.username, safe='')}@" if parts.username else ""
    query = "&".join(
        p for p in parts.query.split("&") if p and not _SECRET_KEY.search(p.split("=", 1)[0])
    )
    return f"{parts.scheme}://{user}{host}{port}{parts.path}" + (f"?{query}" if query else "")


class ConnectionLost(DatabaseError):
    """The connection died inside a transaction (server restart, admin shutdown, network).

    ``commit_unknown`` is False when it died before COMMIT was sent: the server rolled the
    transaction back, so running it again is safe. True when it died during COMMIT: the
    transaction may or may not have been committed."""

    def __init__(self, message: str, *, commit_unknown: bool) -> None:
        super().__init__(message)
        self.commit_unknown = commit_unknown


class TransactionAborted(DatabaseError):
    """The server rolled the whole transaction back to break a deadlock, or for a
    serialization conflict: nothing of it was committed, so running it again is safe."""


# The server's "try again" errors (SQLSTATE class 40): the transaction was rolled back.
_RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _lost(exc: BaseException, conn: psycopg.Connection[Any]) -> bool:
    """Whether ``exc`` means the session is gone (not a statement's own error)."""
    return isinstance(exc, psycopg.OperationalError) and (
        conn.closed
        or conn.broken
        or isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow)
    )


def reconnecting(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[Any, P], T]:
    """Run a backend method (``self._db`` a :class:`Database`; the method ONE transaction,
    and idempotent: a read, or a write that finds its own earlier effect) again on a new
    connection when its connection is lost. Nested calls (inside another transaction of the
    same thread) are not retried themselves: the outermost call runs everything again."""

    @functools.wraps(method)
    def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        db: Database = self._db
        return db.retrying(lambda: method(self, *args, **kwargs))

    return wrapper


def stored_as(stored: object, written: object) -> bool:
    """Whether ``stored`` (read back from the database) is the JSON value ``written`` (what a
    transaction wrote), compared as JSON: jsonb reorders keys, reads a tuple back as a list
    and may read 1.0 back as 1."""
    return bool(json.loads(encode_compact(stored)) == json.loads(encode_compact(written)))


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for ``parts`` (schema first, so that two schemas
    in one database never share a lock)."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Database:
    """The connection settings of one URL, and this backend object's connection."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        reconnect_for: float = 60.0,
        migrate: bool = True,
    ) -> None:
        # The same checks as everywhere (ConfigError): libpq's own complaints about a URL
        # quote it, password and all.
        classify(url, "")
        if not is_postgres_url(url):
            raise ConfigError(f"not a PostgreSQL URL (postgresql://...): {redact(url)!r}")
        try:
            params = conninfo.conninfo_to_dict(url)
        except (psycopg.ProgrammingError, UnicodeDecodeError) as exc:
            # psycopg's message quotes the whole URL: only what is left once scrubbed.
            reason = scrub(str(exc), [url, *url_secrets(url)]).split(" in URI:")[0]
            params = None
        if params is None:  # raised here, not in the handler: no context quoting the URL
            raise ConfigError(
                f"cannot read the PostgreSQL URL {redact(url)}: {redact_text(reason).strip()}; "
                "check its form (postgresql://user:password@host:5432/database)"
            )
        self._url = url
        # A writer's connection migrates the schema; a reader's only checks it is there
        # and current (reads never run DDL), raising SchemaMissing otherwise.
        self.migrate = migrate
        # Every form the password may take in libpq's messages, for scrubbing them.
        self._secrets = url_secrets(url)
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
        self.reconnect_for = float(reconnect_for)
        self._connected = False  # once connected, a lost connection is waited for
        # Per thread: how deep in transactions it is (only the outermost level retries).
        self._local = threading.local()

    # -- errors ---------------------------------------------------------------------------

    def _text(self, exc: BaseException) -> str:
        """``exc``'s message on one line, with any password scrubbed out."""
        # Scrubbed before the lines are joined: a secret may hold a line break.
        text = scrub(str(exc), self._secrets)
        return redact_text(" ".join(text.split()) or type(exc).__name__)

    def error(self, action: str, exc: BaseException) -> DatabaseError:
        """A DatabaseError for ``exc`` naming where, with any password scrubbed out."""
        text = self._text(exc)
        if isinstance(exc, _RETRYABLE):  # OperationalErrors too, but not the connection's
            hint = "the server rolled the transaction back; nothing was changed"
        elif isinstance(exc, psycopg.OperationalError):
            hint = (
                "check that the server runs and accepts connections, and the URL's host, "
                "port, database, user and password"
            )
        else:
            hint = "the statement was rolled back; nothing was changed"
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

    async def async_session(self, purpose: str) -> psycopg.AsyncConnection[Any]:
        """:meth:`session` for asyncio: a new autocommit ``AsyncConnection``, with the same
        settings (keepalives, timeout, a name saying what it is for)."""
        try:
            conn = await psycopg.AsyncConnection.connect(
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
                if self.migrate:
                    migrate(conn)
                else:
                    self._check_schema(conn)
                row = conn.execute(q.CURRENT_SCHEMA).fetchone()
            except psycopg.Error as exc:
                conn.close()
                raise self.error("prepare the jobledger tables", exc) from exc
            except BaseException:
                conn.close()
                raise
            self.schema = str(row[0]) if row and row[0] else ""
            self._conn = conn
            self._connected = True
        return self._conn

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        """For a reader: the schema must be there and current, since a read never
        migrates; SchemaMissing (or SchemaOutdated) says which command creates it."""
        row = conn.execute(q.CURRENT_SCHEMA).fetchone()
        schema = str(row[0]) if row and row[0] else None
        where = f"{self._where} (schema {schema})" if schema else self._where
        run = f"run `jobledger db migrate --url {shareable(self._url)}`"
        applied = applied_versions(conn) if schema else set()
        if not applied:
            raise SchemaMissing(
                f"no jobledger schema in {where}; {run} to create it (reading commands "
                "never create or migrate tables)"
            )
        pending = [m.version for m in migrations() if m.version not in applied]
        if pending:
            raise SchemaOutdated(
                f"the jobledger schema in {where} is older than this jobledger (migration(s) "
                f"{', '.join(f'{v:04d}' for v in pending)} pending); {run} to upgrade it "
                "(reading commands never migrate)"
            )

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    def in_transaction(self) -> bool:
        """Whether this thread is inside a transaction (or statement) of this object."""
        return self._depth() > 0

    def retrying(self, run: Callable[[], T], settled: Callable[[], T | None] | None = None) -> T:
        """``run()`` (one whole transaction), run again on a new connection with backoff
        when its connection is lost, for up to ``reconnect_for`` seconds; run again at
        once when the server rolled it back to break a deadlock (:class:`TransactionAborted`).

        After a COMMIT of unknown outcome, ``settled()`` (when given) re-reads the database:
        a value means the lost commit did land and is the result; None means it did not,
        and ``run`` runs again. Without ``settled``, ``run`` must be idempotent: a read, or
        a write that finds, under its row locks, what its lost attempt wrote."""
        if self._depth():
            return run()  # nested: the outermost transaction is the one to run again
        deadline = time.monotonic() + self.reconnect_for
        delay = _BACKOFF_FIRST
        check = False
        while True:
            try:
                if check and settled is not None:
                    found = settled()
                    if found is not None:
                        return found
                return run()
            except TransactionAborted as exc:
                if time.monotonic() > deadline:
                    raise
                log.info("%s; running it again", exc)
            except ConnectionLost as exc:
                if time.monotonic() + delay > deadline:
                    raise
                check = check or exc.commit_unknown
                log.warning(
                    "Lost the connection to PostgreSQL (%s)%s; reconnecting in %.1fs",
                    self._where,
                    ", the outcome of a COMMIT is unknown" if exc.commit_unknown else "",
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    @contextlib.contextmanager
    def transaction(
        self, action: str, *, durable: bool = True
    ) -> Iterator[psycopg.Connection[Any]]:
        """This object's connection inside a transaction (a savepoint when nested).

        ``durable=False`` commits without waiting for the WAL flush (survives a crash of
        this process, not of the server's machine), as ``durability="flush"`` promises.
        A psycopg error becomes a DatabaseError; a lost connection, :class:`ConnectionLost`
        (reopened next time). At the outermost level a connection found dead when the
        transaction begins (nothing sent yet) is replaced at once, with backoff, since the
        usual victim of a server restart is an idle connection.
        """
        with self._lock:
            outermost = self._depth() == 0
            conn, tx = self._enter(action, outermost)
            self._local.depth = self._depth() + 1
            committing = False
            try:
                try:
                    if not durable:
                        conn.execute(q.UNSYNCED_COMMIT)
                    yield conn
                    committing = True
                except BaseException as exc:
                    if not tx.__exit__(type(exc), exc, exc.__traceback__):
                        raise
                else:
                    if outermost:  # a nested level releases a savepoint: no commit
                        point("pg.before_commit")
                    tx.__exit__(None, None, None)  # COMMIT (or RELEASE SAVEPOINT)
                    if outermost:
                        point("pg.after_commit")
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    self._conn = None
                if isinstance(exc, _RETRYABLE) and not _lost(exc, conn):
                    raise TransactionAborted(str(self.error(action, exc))) from exc
                if _lost(exc, conn):
                    raise ConnectionLost(
                        str(self.error(action, exc)), commit_unknown=committing and outermost
                    ) from exc
                raise self.error(action, exc) from exc
            except psycopg.Error as exc:
                raise self.error(action, exc) from exc
            finally:
                self._local.depth = self._depth() - 1

    @contextlib.contextmanager
    def statement(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """This object's connection, outside any transaction, for ONE write statement that
        commits by itself (autocommit): a single round trip, no BEGIN or COMMIT. Durable as
        the server's ``synchronous_commit`` has it (use :meth:`transaction` to turn it off).

        The statement is the commit, so the commit's fault points surround it:
        ``pg.before_commit`` before it is sent, ``pg.after_commit`` once it is answered. A
        connection lost while it runs raises :class:`ConnectionLost` with
        ``commit_unknown`` (it may have committed); errors as :meth:`transaction`'s. Only
        at the outermost level (not inside a transaction of this thread)."""
        with self._lock:
            if self._depth():
                raise RuntimeError("Database.statement inside a transaction")
            try:
                conn = self._connection()
            except SchemaMissing:
                raise
            except (psycopg.OperationalError, DatabaseError) as exc:
                if not self._connected:  # a first connection: a wrong URL, a server down
                    if isinstance(exc, DatabaseError):
                        raise
                    raise self.error(action, exc) from exc
                error = exc if isinstance(exc, DatabaseError) else self.error(action, exc)
                # A RE-connection: retrying() waits for the server (nothing was sent).
                raise ConnectionLost(str(error), commit_unknown=False) from exc
            self._local.depth = 1
            try:
                point("pg.before_commit")
                yield conn
                point("pg.after_commit")
            except psycopg.OperationalError as exc:
                if conn.closed or conn.broken:
                    self._conn = None
                if _lost(exc, conn):
                    raise ConnectionLost(str(self.error(action, exc)), commit_unknown=True) from exc
                if isinstance(exc, _RETRYABLE):
                    raise TransactionAborted(str(self.error(action, exc))) from exc
                raise self.error(action, exc) from exc
            except psycopg.Error as exc:
                raise self.error(action, exc) from exc
            finally:
                self._local.depth = 0

    def _enter(self, action: str, outermost: bool) -> tuple[psycopg.Connection[Any], Any]:
        """The connection and its entered transaction; a dead idle connection is replaced
        (with backoff, up to ``reconnect_for``) when nothing has been sent on it yet."""
        deadline = time.monotonic() + self.reconnect_for
        delay = _BACKOFF_FIRST
        while True:
            try:
                conn = self._connection()
                tx = conn.transaction()
                tx.__enter__()
                return conn, tx
            except SchemaMissing:
                raise  # waiting would not create the tables
            except (psycopg.OperationalError, DatabaseError) as exc:
                # Only a RE-connection waits for the server: a first connection that fails
                # is a wrong URL or a server that is down, reported at once as before.
                if not outermost or not self._connected or time.monotonic() + delay > deadline:
                    if isinstance(exc, DatabaseError):
                        raise
                    conn_ = self._conn
                    if conn_ is not None and (conn_.closed or conn_.broken):
                        self._conn = None
                    if conn_ is not None and _lost(exc, conn_):
                        # A nested SAVEPOINT on a dead session: the outermost runs again.
                        raise ConnectionLost(
                            str(self.error(action, exc)), commit_unknown=False
                        ) from exc
                    raise self.error(action, exc) from exc
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                log.warning(
                    "Reconnecting to PostgreSQL (%s) in %.1fs: %s",
                    self._where,
                    delay,
                    exc if isinstance(exc, DatabaseError) else self._text(exc),
                )
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    def ensure_schema(self) -> str:
        """Connect (and migrate, or for a reader check) if not yet done; the current
        schema's name."""
        with self._lock:
            self._connection()
            return self.schema

    def close(self) -> None:
        """Close this object's connection (reopened on next use)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
