"""A running job's progress: the report a handler makes (``job.progress``), as stored and
shown (:class:`JobProgress`), and the buffer that coalesces reports into few writes.

Reports are cheap because they are not writes: a report replaces the one held in memory,
and the Worker writes the one held at most once per ``PROGRESS_EVERY`` seconds per job,
and once more when the attempt ends (``_attempt_services.py``). Progress is a hint for
people, not a record anything depends on: it is written without fsync (files) or without
waiting for the WAL flush (PostgreSQL), so a crash may lose the last second of it.
"""

from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

from ._errors import InvalidPayload
from ._inputs import storable_text
from ._job_record import JobRecord

__all__ = ["MAX_NOTE_CHARS", "PROGRESS_EVERY", "JobProgress", "ProgressBuffer", "checked_report"]

#: Seconds between two progress writes of one job, at most one per this interval.
PROGRESS_EVERY = 1.0
#: A progress note longer than this is cut (with "..."): a note is a line for people.
MAX_NOTE_CHARS = 200


class JobProgress(NamedTuple):
    """A job's last progress report (``Job.progress_info``): ``done`` of ``total`` (None
    when the handler gave none), an optional ``note``, and ``at``, when it was reported
    (ISO 8601 UTC). Numbers are floats, as stored."""

    done: float
    total: float | None
    note: str | None
    at: str

    @property
    def fraction(self) -> float | None:
        """``done / total`` (0 to 1 when done is within total), or None without a total."""
        if self.total is None or self.total <= 0:
            return None
        return self.done / self.total

    def short(self) -> str:
        """``3/10 30%``, ``3/10``, or ``3`` (no total): a table cell."""
        done = f"{self.done:g}"
        if self.total is None:
            return done
        text = f"{done}/{self.total:g}"
        fraction = self.fraction
        return text if fraction is None else f"{text} {fraction:.0%}"

    @classmethod
    def of(cls, record: JobRecord) -> JobProgress | None:
        """The stored report of ``record``, or None when it has none."""
        if record.progress_done is None or record.progress_at is None:
            return None
        return cls(
            record.progress_done, record.progress_total, record.progress_note, record.progress_at
        )


def _number(value: Any, what: str, job_id: str) -> float:
    if type(value) is bool or not isinstance(value, (int, float)):
        raise InvalidPayload(
            f"job {job_id}: progress {what} must be a number, got {type(value).__name__} "
            f"{value!r}; pass e.g. job.progress(3, 10)"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidPayload(
            f"job {job_id}: progress {what} must be a finite number, got {value!r}"
        )
    return number


def checked_report(job_id: str, done: Any, total: Any, note: Any, at: str) -> JobProgress:
    """The report of ``job.progress(done, total, note)`` as stored: numbers as floats,
    the note as storable text cut to :data:`MAX_NOTE_CHARS`. :class:`InvalidPayload` for
    what is not a finite number (``done``, ``total``) or not a string (``note``)."""
    if note is not None and not isinstance(note, str):
        raise InvalidPayload(
            f"job {job_id}: a progress note must be a string or None, got {type(note).__name__}"
        )
    if note is not None and len(note) > MAX_NOTE_CHARS:
        note = note[: MAX_NOTE_CHARS - 3] + "..."
    return JobProgress(
        _number(done, "done", job_id),
        None if total is None else _number(total, "total", job_id),
        None if note is None else storable_text(note),
        at,
    )


class ProgressBuffer:
    """The reports of one attempt not yet written: the latest one only, and when the last
    write was (a monotonic time). Thread-safe: the handler reports, the Worker takes."""

    def __init__(self, every: float = PROGRESS_EVERY) -> None:
        self.every = every
        self._held: JobProgress | None = None
        self._written_at: float | None = None  # monotonic time of the last write
        self._guard = threading.Lock()

    def hold(self, report: JobProgress) -> None:
        """Keep ``report`` in place of any held one."""
        with self._guard:
            self._held = report

    @property
    def holding(self) -> bool:
        """Whether a report waits to be written (a read without the lock: a hint)."""
        return self._held is not None

    def due_at(self) -> float | None:
        """When the held report may be written (monotonic), or None when none is held."""
        with self._guard:
            if self._held is None:
                return None
            return -math.inf if self._written_at is None else self._written_at + self.every

    def take(self, now: float, *, force: bool = False) -> JobProgress | None:
        """The held report if it is due at ``now`` (or ``force``), marked written at
        ``now``; else None."""
        with self._guard:
            report = self._held
            if report is None:
                return None
            if not force and self._written_at is not None and now < self._written_at + self.every:
                return None
            self._held = None
            self._written_at = now
            return report
