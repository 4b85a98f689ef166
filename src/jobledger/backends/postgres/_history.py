"""A PostgreSQL queue's bounded reads (``backends/_history.py``): each one statement of
``_queries.py`` with a LIMIT, or an aggregate, through the job backend's connection (the
read-only twin's, which never migrates)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._job_record import JobRecord, JobStatus
from .._history import HistoryFilter
from . import _queries as q
from ._db import reconnecting
from ._rows import record_of

if TYPE_CHECKING:
    from .jobs import PostgresJobBackend

__all__ = ["PostgresHistory"]

_FINISHED = ("Completed", "Failed", "Cancelled")


class PostgresHistory:
    """The bounded reads of ``backend``'s queue."""

    def __init__(self, backend: PostgresJobBackend) -> None:
        self._backend = backend
        self._db = backend._db  # the connection, for @reconnecting and transaction()

    def counts(self) -> dict[str, int]:
        """Jobs per status (one aggregate)."""
        return self._backend.counts()

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status (one aggregate)."""
        return self._backend.counts_by_queue()

    @reconnecting
    def live_page(self, status: JobStatus, limit: int, offset: int) -> list[JobRecord]:
        """One status's live jobs in serving order, ``limit`` from ``offset``."""
        with self._db.transaction("list jobs", durable=False) as conn:
            rows = conn.execute(q.LIVE_PAGE, (status.value, limit, offset)).fetchall()
        return [record_of(r) for r in rows]

    @reconnecting
    def history(
        self, where: HistoryFilter, limit: int, before: tuple[str, str] | None
    ) -> list[JobRecord]:
        """A page of finished jobs matching ``where``, latest finish first."""
        statuses = sorted(where.statuses) if where.statuses is not None else list(_FINISHED)
        at, after_id = before if before is not None else (None, None)
        params = (
            statuses,
            where.type,
            where.type,
            where.queue,
            where.queue,
            where.since,
            where.since,
            where.until,
            where.until,
            at,
            at,
            at,
            after_id,
            limit,
        )
        with self._db.transaction("list finished jobs", durable=False) as conn:
            rows = conn.execute(q.HISTORY_PAGE, params).fetchall()
        return [record_of(r) for r in rows]

    @reconnecting
    def finished_per_minute(self, since: str) -> dict[str, dict[str, int]]:
        """Finishes since ``since`` per minute and status (one aggregate)."""
        out: dict[str, dict[str, int]] = {}
        with self._db.transaction("count finished jobs", durable=False) as conn:
            for minute, status, n in conn.execute(q.FINISHED_PER_MINUTE, (since,)):
                out.setdefault(str(minute), {})[str(status)] = int(n)
        return out

    def close(self) -> None:
        """Nothing of its own: the connection is the backend's."""
