"""The PostgreSQL backends' error."""

from __future__ import annotations

from ..._errors import JobLedgerError

__all__ = ["DatabaseError"]


class DatabaseError(JobLedgerError):
    """PostgreSQL refused a connection or a statement. The message names the host and the
    database, never the password; a failed statement changed nothing."""
