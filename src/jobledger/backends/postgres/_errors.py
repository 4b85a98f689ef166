"""The PostgreSQL backends' errors."""

from __future__ import annotations

from ..._errors import JobLedgerError
from ..._redact import redact_text

__all__ = ["DatabaseError", "SchemaMissing", "SchemaOutdated", "WrongConnection"]


class DatabaseError(JobLedgerError):
    """PostgreSQL refused a connection or a statement. The message names the host and the
    database, never the password; a failed statement changed nothing.

    Every message is redacted on the way in (:func:`jobledger._redact.redact_text`): a URL
    in it loses its password and query, a ``password=...`` value is hidden. Text quoted
    from libpq is scrubbed of the URL's password before (``Database.error``)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


class SchemaMissing(DatabaseError):
    """A read found no jobledger tables where the URL points (reads never migrate): the
    message says to run ``jobledger db migrate --url <url>`` (shown without password)."""


class SchemaOutdated(SchemaMissing):
    """A read found a jobledger schema older than this jobledger's migrations (reads
    never migrate): the message says to run ``jobledger db migrate --url <url>``."""


class WrongConnection(JobLedgerError, TypeError):
    """``enqueue(..., connection=)`` got what is not a psycopg 3 ``psycopg.Connection``
    (an asyncio ``psycopg.AsyncConnection``, a psycopg2 connection, a pool...); nothing was
    written. A TypeError, as a wrong argument's type is, and a JobLedgerError."""
