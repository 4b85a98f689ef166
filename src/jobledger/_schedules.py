"""Periodic jobs: what a schedule is, how it is stored, and which of its occurrences are due.

A schedule (:class:`Schedule`, declared next to the handlers and given to a ``Worker``, or
stored by ``JobQueue.schedule``) enqueues its job at each occurrence of a cron expression
in a time zone (``_cron.py``). It is stored as a :class:`StoredSchedule` (a folder's
``schedules.json``, a PostgreSQL table's row: the same document), with since when it counts
(``since``) and the last occurrence enqueued (``last``).

Every occurrence is enqueued exactly once, whichever workers run and however many: a
backend fires a schedule atomically (``JobBackend.change_schedule``: under the queue lock,
or in one transaction holding the schedule's row), and the occurrence's job has the id and
unique key ``<name>@<occurrence, ISO UTC>``, so that an occurrence enqueued by a process
that died before it stored ``last`` is found, not enqueued again.

Occurrences missed while nothing ran (after ``max(since, last)``, up to now) follow the
schedule's ``catch_up``: ``"latest"`` (the default) enqueues only the most recent one,
``"all"`` every one, the most recent :data:`MAX_CATCH_UP` at most, and ``"none"`` only one
that came due less than :data:`ON_TIME` ago (a running worker's, not a missed one). The
others are skipped for good: ``last`` moves past them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._clock import iso_utc
from ._cron import check_cron, check_timezone, last_before, next_after
from ._durations import to_timeout
from ._enqueue import new_record
from ._errors import ConfigError
from ._inputs import check_name
from ._job_fields import shown
from ._job_record import JobRecord
from ._job_types import encode_job

__all__ = [
    "CATCH_UPS",
    "MAX_CATCH_UP",
    "ON_TIME",
    "Schedule",
    "StoredSchedule",
    "due_occurrences",
    "fire",
    "occurrence_id",
    "parse_time",
]

#: What becomes of the occurrences missed while no worker ran.
CATCH_UPS = ("latest", "all", "none")
#: The most occurrences ``catch_up="all"`` enqueues at once (the most recent ones).
MAX_CATCH_UP = 100
#: Seconds after its time within which an occurrence is on time, not missed: what
#: ``catch_up="none"`` still enqueues.
ON_TIME = 60.0


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time as stored (``...Z``) as an aware datetime."""
    return dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def occurrence_id(name: str, moment: dt.datetime) -> str:
    """The id, and the unique key, of a schedule's job for one occurrence."""
    return f"{name}@{iso_utc(moment)}"


@dataclass(frozen=True)
class Schedule:
    """A periodic job: enqueue ``job`` at each occurrence of ``cron`` in ``timezone``.

    Declared next to the handlers and given to a Worker, which stores it when it starts
    (``Worker(queue, handlers, schedules=[Schedule("daily-report", "0 7 * * *", job=...,
    timezone="Europe/Paris")])``), or stored at once with ``JobQueue.schedule``. ``job``
    is what ``JobQueue.enqueue`` takes: a dict with a ``"type"`` key, or an instance of a
    ``@job_type`` class. ``cron``: five fields (minute hour day-of-month month
    day-of-week), read by croniter (``pip install -e '.[cron]'``). ``catch_up``: what
    becomes of occurrences missed while no worker ran: ``"latest"`` (only the most recent
    one), ``"all"`` (each, the most recent 100 at most) or ``"none"``. ``priority``,
    ``max_attempts`` and ``timeout`` are each occurrence's job's, as ``enqueue`` takes
    them. Checked when it is made (ConfigError)."""

    name: str
    cron: str
    job: Any
    timezone: str = "UTC"
    catch_up: str = "latest"
    priority: int = 0
    max_attempts: int = 3
    timeout: dt.timedelta | float | None = None

    def __post_init__(self) -> None:
        self.stored("1970-01-01T00:00:00.000Z")  # every check, before anything is stored

    def stored(self, since: str) -> StoredSchedule:
        """This schedule as stored from ``since`` (ISO UTC) on, never enqueued yet."""
        check_name(self.name, "schedule name")
        if "@" in self.name:
            raise ConfigError(
                f"schedule name {self.name!r} holds '@', which separates the name from the "
                "occurrence in its jobs' ids; pick a name without it"
            )
        check_cron(self.cron)
        check_timezone(self.timezone)
        if self.catch_up not in CATCH_UPS:
            raise ConfigError(
                f"catch_up must be 'latest', 'all' or 'none', got {self.catch_up!r}: what "
                "becomes of the occurrences missed while no worker ran"
            )
        type_name, payload = encode_job(self.job)
        if "job_id" in payload:
            raise ConfigError(
                f"the job of schedule {self.name!r} gives a job_id; each occurrence's job "
                "gets its own (<name>@<time>): drop it"
            )
        stored = StoredSchedule(
            name=self.name,
            cron=self.cron,
            timezone=self.timezone,
            job_type=type_name,
            payload=payload,
            priority=self.priority,
            max_attempts=self.max_attempts,
            timeout=to_timeout(self.timeout, f"the timeout of schedule {self.name!r}"),
            catch_up=self.catch_up,
            since=since,
        )
        stored.job_record(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), since)
        return stored


@dataclass(frozen=True)
class StoredSchedule:
    """A schedule as stored (``JobQueue.schedules()`` lists them): its definition, since
    when it counts (``since``, ISO UTC: when it was stored or last redefined) and the
    last occurrence enqueued (``last``, ISO UTC, or None)."""

    name: str
    cron: str
    timezone: str
    job_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    catch_up: str = "latest"
    since: str = ""
    last: str | None = None

    def same_definition(self, other: StoredSchedule) -> bool:
        """Whether both enqueue the same job at the same times (``since``, ``last`` aside)."""
        return self._definition() == other._definition()

    def _definition(self) -> tuple[Any, ...]:
        return (
            self.cron,
            self.timezone,
            self.job_type,
            self.payload,
            self.priority,
            self.max_attempts,
            self.timeout,
            self.catch_up,
        )

    def next_run(self, now: dt.datetime) -> dt.datetime:
        """The first occurrence after ``now`` and after everything enqueued (aware UTC)."""
        base = max(now, self._base())
        return next_after(self.cron, check_timezone(self.timezone), base)

    def _base(self) -> dt.datetime:
        """The time after which occurrences count: just before ``since`` (an occurrence
        at the very moment a schedule is stored counts), or the last one enqueued."""
        since = parse_time(self.since) - dt.timedelta(microseconds=1)
        return max(since, parse_time(self.last)) if self.last else since

    def job_record(self, moment: dt.datetime, now: str) -> JobRecord:
        """The Queued job of the occurrence at ``moment``, made at ``now`` (ISO UTC)."""
        job_id = occurrence_id(self.name, moment)
        return new_record(
            {"type": self.job_type, **self.payload},
            job_id,
            self.priority,
            None,
            self.max_attempts,
            now,
            set(),
            self.timeout,
            job_id,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored document (the name is its key in schedules.json, or its row's)."""
        return {
            "cron": self.cron,
            "timezone": self.timezone,
            "job": {
                "type": self.job_type,
                "payload": self.payload,
                "priority": self.priority,
                "max_attempts": self.max_attempts,
                "timeout": self.timeout,
            },
            "catch_up": self.catch_up,
            "since": self.since,
            "last": self.last,
        }

    @classmethod
    def from_json(cls, name: str, doc: object) -> StoredSchedule:
        """The schedule ``name`` from its stored document; ValueError naming what is wrong
        (a damaged or hand-edited document is refused whole, never half read)."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"schedule {name!r} is a JSON {type(doc).__name__}, not an object")
        job = doc.get("job")
        if not isinstance(job, Mapping):
            raise ValueError(f"schedule {name!r}: 'job' is missing or not an object")
        for key in ("cron", "timezone", "catch_up", "since"):
            if not isinstance(doc.get(key), str):
                raise ValueError(f"schedule {name!r}: {key!r} is missing or not a string")
        last = doc.get("last")
        for key, value in (("since", doc["since"]), ("last", last)):
            if value is not None and not _is_time(value):
                raise ValueError(f"schedule {name!r}: {key!r} is not an ISO 8601 time")
        timeout = job.get("timeout")
        if timeout is not None and not (
            type(timeout) in (int, float) and math.isfinite(timeout) and timeout > 0
        ):
            raise ValueError(f"schedule {name!r}: the job's 'timeout' is {shown(timeout)}")
        stored = cls(
            name=name,
            cron=doc["cron"],
            timezone=doc["timezone"],
            job_type=job.get("type"),  # type: ignore[arg-type]  # checked by job_record
            payload=job.get("payload"),  # type: ignore[arg-type]
            priority=job.get("priority"),  # type: ignore[arg-type]
            max_attempts=job.get("max_attempts"),  # type: ignore[arg-type]
            timeout=None if timeout is None else float(timeout),
            catch_up=doc["catch_up"],
            since=doc["since"],
            last=last,
        )
        try:
            if not isinstance(stored.payload, dict) or type(stored.priority) is not int:
                raise ConfigError("the job's payload or priority is not of its type")
            if stored.catch_up not in CATCH_UPS:
                raise ConfigError(f"catch_up is {stored.catch_up!r}")
            check_timezone(stored.timezone)
            stored.job_record(parse_time(stored.since), stored.since)
        except (ConfigError, TypeError) as exc:  # InvalidNameError, InvalidPayload too
            raise ValueError(f"schedule {name!r}: {exc}") from None
        return stored


def _is_time(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def due_occurrences(
    schedule: StoredSchedule, now: dt.datetime
) -> tuple[list[dt.datetime], dt.datetime | None]:
    """(the occurrences to enqueue now, oldest first; the newest occurrence due, which
    ``last`` moves to, or None when none is due), by the schedule's ``catch_up``."""
    tz = check_timezone(schedule.timezone)
    limit = {"latest": 1, "all": MAX_CATCH_UP, "none": MAX_CATCH_UP}[schedule.catch_up]
    due = last_before(schedule.cron, tz, now, schedule._base(), limit)
    if not due:
        return [], None
    newest = due[0]
    if schedule.catch_up == "none":
        due = [m for m in due if (now - m).total_seconds() <= ON_TIME]
    due.reverse()
    return due, newest


def fire(
    schedule: StoredSchedule | None, now: dt.datetime
) -> tuple[StoredSchedule | None, list[JobRecord]]:
    """The change a backend applies atomically to fire a schedule at ``now``: the schedule
    with ``last`` moved to the newest due occurrence (the same object when none is due,
    so nothing is written), and the jobs of the occurrences to enqueue."""
    if schedule is None:
        return None, []  # unscheduled meanwhile
    due, newest = due_occurrences(schedule, now)
    if newest is None:
        return schedule, []
    stamp = iso_utc(now)
    jobs = [schedule.job_record(moment, stamp) for moment in due]
    moved = dataclasses.replace(schedule, last=iso_utc(newest))
    return moved, jobs
