"""The PostgreSQL job backend's schedules (``jobledger_schedules``): a base class of
``PostgresJobBackend`` (``jobs.py``). A firing's jobs are put by ``_put.py``'s
``put_once`` in the transaction that moves its schedule on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._job_record import JobRecord
from ..._schedules import StoredSchedule
from . import _queries as q
from ._db import Database, reconnecting
from ._errors import DatabaseError
from ._put import first_of_each, put_once, put_outcomes

__all__ = ["JobSchedules"]

# The two-key advisory lock space of schedule names (objsubid 2 in pg_locks), apart from
# the migrations' ("jlmg"), the unique keys' ("jluk", _put.py) and the leases' locks.
_SCHEDULE_LOCK = 0x6A6C7363  # "jlsc"


def _schedule_of(name: str, record: Any) -> StoredSchedule:
    """A schedule row's record; a damaged one (edited by hand) raises DatabaseError."""
    try:
        return StoredSchedule.from_json(name, record)
    except ValueError as exc:
        raise DatabaseError(
            f"the row of schedule {name!r} in jobledger_schedules does not read back: {exc}; "
            "store the schedule again (JobQueue.schedule) or delete the row"
        ) from None


class JobSchedules:
    """Schedules of ``PostgresJobBackend`` (its base class)."""

    _db: Database
    location: str

    def _tx(
        self, action: str, *, durable: bool = True
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

    @reconnecting
    def schedules(self) -> list[StoredSchedule]:
        """The stored schedules, by name: one query of a small table."""
        with self._tx("read schedules", durable=False) as conn:
            rows = conn.execute(q.SCHEDULES).fetchall()
        return [_schedule_of(name, record) for name, record in rows]

    def change_schedule(
        self,
        name: str,
        change: Callable[[StoredSchedule | None], tuple[StoredSchedule | None, list[JobRecord]]],
    ) -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
        """In one transaction: lock the schedule's row (its name, while it has none),
        ``change`` it, put its jobs and write it. Two workers firing one schedule wait
        for each other, and the second finds ``last`` moved: nothing is due.

        A COMMIT of unknown outcome runs it again: a landed firing leaves nothing due, a
        lost one fires again (its jobs' ids are the occurrences', so a job is never
        stored twice)."""

        def run() -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
            with self._tx("change a schedule") as conn:
                conn.execute(q.LOCK_SCHEDULE_NAME, (_SCHEDULE_LOCK, name))
                row = conn.execute(q.LOCK_SCHEDULE, (name,)).fetchone()
                old = None if row is None else _schedule_of(name, row[0])
                new, jobs = change(old)
                stored: list[tuple[JobRecord, bool]] = []
                if jobs:
                    unique = first_of_each(jobs)
                    staged, inserted, existing = put_once(
                        conn, unique, frozenset(), None, self.location
                    )
                    stored = put_outcomes(jobs, unique, staged, inserted, existing)
                if new is None and old is not None:
                    conn.execute(q.DELETE_SCHEDULE, (name,))
                elif new is not None and new != old:
                    conn.execute(q.PUT_SCHEDULE, (name, Jsonb(new.to_json())))
            return new, stored

        return self._db.retrying(run)
