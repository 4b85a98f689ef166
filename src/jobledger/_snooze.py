"""Snooze: a handler asks for its job to run again later, the attempt not counted.

A handler raises ``jobledger.Snooze(seconds)`` (or returns one): the job goes back to
Queued, due ``seconds`` from now (its ``run_after``, by the queue's clock), and is served
again in its turn once due (priority, then first in first out, as any Queued job). The
attempt that snoozed is not counted (``attempts`` goes back to what it was before that
claim), no error is recorded (the last failure's message, if any, stays as it was), and
the job is not retried as a failure: no backoff, ``max_attempts`` untouched. Its
checkpoint and progress stay, so the next attempt resumes from them.

Fenced as a completion or failure is (:func:`check_owned`: Running under the worker that
asks), and when the caller has the claimed job, by its attempt too (its attempt number and
start, as the claim stamped them): a worker presumed dead whose job was recovered and
claimed again, even by itself, cannot snooze the attempt that replaced its own. A job
whose cancel was asked while it ran is never run again: its snooze ends it Cancelled.

Attempts are not counted, so a job that snoozes on every attempt snoozes forever:
``max_attempts`` never fails it. A cap is the handler's business, and it has what it
needs: ``job.created`` says how long the job has waited, and its checkpoint survives a
snooze (``job.checkpoint({"snoozes": n + 1})`` counts them). There is no ``max_snoozes``
option: it would be a second attempt counter in every job's record (a new field, a
schema migration) for a limit only the handler can choose well (a count, a deadline, the
state of what it waits for), and a job that hit it would fail with no error of its own.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ._attempt_changes import ended_cancelled
from ._clock import iso_utc
from ._durations import to_seconds
from ._errors import JobConflict
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_transitions import Change, check_owned
from ._log import log

if TYPE_CHECKING:
    from ._job_view import Job
    from ._queue import JobQueue
    from ._worker_report import JobReporter

__all__ = ["Snooze", "log_snooze", "report_snooze", "snoozing"]


class Snooze(Exception):
    """Raise it in a handler (or return it) to run the job again ``seconds`` from now
    (a ``timedelta`` or a number of seconds, 0 or more): the job goes back to Queued,
    due then, its attempt not counted, no error recorded, not retried as a failure.

    Not an error: a Worker records it as a snooze (its log line says "snoozed for N s"),
    under thread and process isolation alike. Attempts are not counted, so a job that
    always snoozes never fails for ``max_attempts``: cap it in the handler (``job.created``,
    or a count kept in ``job.checkpoint``). A job whose cancel was asked ends Cancelled."""

    def __init__(self, seconds: dt.timedelta | float) -> None:
        #: How long to wait, in seconds (checked: finite, 0 or more).
        self.seconds = to_seconds(seconds, "Snooze's seconds")
        super().__init__(f"snoozed for {self.seconds:g} s")

    def __repr__(self) -> str:
        return f"Snooze({self.seconds:g})"


def _check_attempt(record: JobRecord, attempts: int, started: str | None) -> None:
    """Raise :class:`JobConflict` unless ``record`` is in the attempt the caller claimed."""
    if (record.attempts, record.started) != (attempts, started):
        raise JobConflict(
            f"cannot snooze job {record.job_id}: it is Running in attempt {record.attempts} "
            f"(started {record.started}), not in the attempt {attempts} (started {started}) "
            "that asked. It was probably recovered after this worker was presumed dead and "
            "claimed again; nothing was written."
        )


def snoozing(
    job_id: str,
    seconds: float,
    now: dt.datetime,
    worker: str | None,
    attempt: tuple[int, str | None] | None = None,
) -> Change:
    """The change snoozing ``job_id`` for ``seconds`` (fenced by ``worker`` and, when
    given, by ``attempt``: the attempt number and start the claim stamped): Queued, due at
    ``now + seconds``, the attempt not counted; Cancelled if its cancel was asked."""
    due = iso_utc(now + dt.timedelta(seconds=seconds))

    def change(record: JobRecord) -> JobRecord:
        check_owned(record, worker, "snooze")
        if attempt is not None:
            _check_attempt(record, *attempt)
        if record.cancel_requested_at is not None:
            return ended_cancelled(
                record, iso_utc(now), f"its handler snoozed it for {seconds:g} s"
            )
        return record.evolve(
            status=JobStatus.QUEUED,
            attempts=max(0, record.attempts - 1),
            worker=None,
            run_after=due,
            # Waiting by its own choice, not a dead worker's: its turn comes by priority.
            recovered=False,
        )

    return change


def log_snooze(new: JobRecord, seconds: float) -> None:
    """Log a recorded snooze (or the cancel it ended in)."""
    if new.status is JobStatus.CANCELLED:
        log.info("Cancelled job %s: %s", new.job_id, new.error_message)
    else:
        log.info(
            "Snoozed job %s for %g s, due again at %s (attempt not counted)",
            new.job_id,
            seconds,
            new.run_after,
        )


def report_snooze(
    queue: JobQueue, reporter: JobReporter, job: Job, snooze: Snooze, took: float
) -> None:
    """A Worker's record of a handler's snooze: stored (fenced by the job's attempt) and
    told in the worker's line for the job; a refused one is logged, as a refused failure."""
    try:
        new = queue.snooze(job, snooze.seconds)
    except JobConflict as conflict:
        log.warning("%s", conflict)
        reporter.finished(job.job_id, job.type, "refused", took, "(its snooze was refused)")
        return
    if new.status is JobStatus.CANCELLED:
        reporter.finished(job.job_id, job.type, "cancelled", took)
        return
    reporter.finished(
        job.job_id,
        job.type,
        "snoozed",
        took,
        f"(snoozed for {snooze.seconds:g} s, due again at {new.run_after}; attempt not counted)",
    )
