"""The PostgreSQL backends' errors."""

from __future__ import annotations

from ..._errors import JobLedgerError

__all__ = ["DatabaseError", "SchemaMissing", "SchemaOutdated"]


class DatabaseError(JobLedgerError):
    """PostgreSQL refused a connection or a statement. The message names the host and the
    database, never the password; a failed statement changed nothing."""


class SchemaMissing(DatabaseError):
    """A read found no jobledger tables where the URL points (reads never migrate): the
    message says to run ``jobledger db migrate --url <url>`` (shown without password)."""


class SchemaOutdated(SchemaMissing):
    """A read found a jobledger schema older than this jobledger's migrations (reads
    never migrate): the message says to run ``jobledger db migrate --url <url>``."""
