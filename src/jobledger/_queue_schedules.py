"""The schedule methods of :class:`~jobledger.JobQueue`: storing, deleting and firing
periodic jobs (their policy is ``_schedules.py``'s; a Worker fires them through
``enqueue_due``, see ``_schedule_runner.py``)."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt

from ._clock import Clock, iso_utc
from ._errors import ConfigError
from ._inputs import check_name
from ._job_record import JobRecord
from ._log import log
from ._schedules import Schedule, StoredSchedule, due_occurrences, fire
from .backends._contract import JobBackend

__all__ = ["QueueSchedules"]


class QueueSchedules:
    """What :class:`~jobledger.JobQueue` does with schedules (a base class of it: these
    methods use its clock, its writer backend and its reader)."""

    clock: Clock

    def _opened(self) -> JobBackend:
        raise NotImplementedError

    def _reading(self) -> JobBackend:
        raise NotImplementedError

    def _announce(self, stored: builtins.list[tuple[JobRecord, bool]]) -> None:
        raise NotImplementedError

    # -- schedules ------------------------------------------------------------------------

    def schedule(
        self,
        name: str | Schedule,
        cron: str | None = None,
        *,
        job: object = None,
        timezone: str = "UTC",
        catch_up: str = "latest",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: dt.timedelta | float | None = None,
    ) -> StoredSchedule:
        """Store a periodic job: ``job`` (what :meth:`enqueue` takes) is enqueued at each
        occurrence of ``cron`` in ``timezone`` by whichever Worker of this queue runs,
        exactly once however many run (see :class:`Schedule`, which this takes instead
        of the arguments). Storing a name again replaces its definition; the occurrences
        it counts then start now (a changed cron makes no "missed" run), and the last
        occurrence enqueued is kept. The same definition again changes nothing. Needs
        croniter (``pip install -e '.[cron]'``)."""
        if isinstance(name, Schedule):
            wanted = name
        else:
            if cron is None:
                raise ConfigError(f"schedule {name!r} needs a cron expression (cron=...)")
            wanted = Schedule(name, cron, job, timezone, catch_up, priority, max_attempts, timeout)
        fresh = wanted.stored(iso_utc(self.clock.now()))

        def change(old: StoredSchedule | None) -> tuple[StoredSchedule | None, list[JobRecord]]:
            if old is not None and old.same_definition(fresh):
                return old, []
            return (fresh if old is None else dataclasses.replace(fresh, last=old.last)), []

        stored, _ = self._opened().change_schedule(fresh.name, change)
        assert stored is not None
        log.info(
            "Schedule %s: %s (%s) enqueues %s",
            stored.name,
            stored.cron,
            stored.timezone,
            stored.job_type,
        )
        return stored

    def unschedule(self, name: str) -> bool:
        """Delete the schedule ``name`` (its jobs already enqueued stay); whether there
        was one. A Worker that declares it (``schedules=``) stores it again when it
        starts: drop it there too."""
        check_name(name, "schedule name")
        found: list[bool] = []

        def change(old: StoredSchedule | None) -> tuple[StoredSchedule | None, list[JobRecord]]:
            found.append(old is not None)
            return None, []

        self._opened().change_schedule(name, change)
        if found[-1]:
            log.info("Unscheduled %s", name)
        return found[-1]

    def schedules(self) -> builtins.list[StoredSchedule]:
        """The stored schedules, by name, with the last occurrence each enqueued
        (``last``) and :meth:`StoredSchedule.next_run`. Reads only."""
        return self._reading().schedules()

    def enqueue_due(self) -> builtins.list[str]:
        """Enqueue every schedule's due occurrences now (what a running Worker does
        about once a second); returns the ids of the jobs stored now. Each occurrence is
        enqueued once whoever asks, as its schedule's ``catch_up`` says."""
        now = self.clock.now()
        backend = self._opened()
        out: builtins.list[str] = []
        for schedule in backend.schedules():
            if not due_occurrences(schedule, now)[1]:
                continue  # looked at without a lock; fired under it
            _, stored = backend.change_schedule(schedule.name, lambda s: fire(s, now))
            self._announce(stored)
            out += [record.job_id for record, new in stored if new]
        return out
