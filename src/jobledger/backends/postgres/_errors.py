"""The PostgreSQL backends' error."""

from __future__ import annotations

from ..._errors import JobLedgerError
from ..._redact import redact_text

__all__ = ["DatabaseError"]


class DatabaseError(JobLedgerError):
    """PostgreSQL refused a connection or a statement. The message names the host and the
    database, never the password; a failed statement changed nothing.

    Every message is redacted on the way in (:func:`jobledger._redact.redact_text`): a URL
    in it loses its password and query, a ``password=...`` value is hidden. Text quoted
    from libpq is scrubbed of the URL's password before (``Database.error``)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))
