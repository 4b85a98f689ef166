"""The changes JobQueue makes to one job's record, each a function from record to record.

A backend's ``transition`` applies one under its lock (or in its transaction) to the
record as stored. ``complete``, ``fail`` and ``requeue`` are fenced: they apply only to a
job Running under the worker that asks (:func:`check_owned`); a worker presumed dead, whose
job was recovered and perhaps run by another, gets :class:`JobConflict` and changes nothing.

A cancel of a Running job only asks (``cancel_requested_at``): its worker ends the
attempt, and a job whose cancel was asked is never run again (a failure, a requeue, its
worker's death: Cancelled, see ``_attempt_changes.ended_cancelled``); one whose handler
returns a result anyway is Completed with it.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ._attempt_changes import ended_cancelled
from ._clock import iso_utc
from ._errors import ForeignFailure, JobConflict, JobLedgerError
from ._inputs import check_result_size, storable_text
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_types import check_storable
from ._log import log
from ._retry_policy import after_failure

__all__ = [
    "Change",
    "cancelling",
    "check_owned",
    "completing",
    "failing",
    "failure_text",
    "json_ready",
    "log_failure",
    "requeueing",
    "retrying",
    "settled",
]

#: A change of one job's record, as ``JobBackend.transition`` applies it.
Change = Callable[[JobRecord], JobRecord]


def json_ready(value: Any, what: str, job_id: str | None = None) -> None:
    """Raise :class:`InvalidPayload` (a TypeError), before anything is written, if the
    result ``value`` cannot be stored as JSON (see :func:`check_storable`) or takes more
    than ``MAX_RESULT_BYTES`` (the message then names ``job_id`` when given)."""
    if value is None:
        return  # a handler's usual result: nothing to encode
    check_result_size(value, check_storable(value, what, "result"), what, job_id)


def check_owned(record: JobRecord, worker: str | None, action: str) -> None:
    """Raise :class:`JobConflict` unless ``record`` is Running under ``worker``."""
    if record.status is not JobStatus.RUNNING or record.worker != worker:
        raise JobConflict(
            f"cannot {action} job {record.job_id}: it is {record.status.value}"
            + (f" under worker {record.worker}" if record.worker else "")
            + f", not Running under this worker ({worker}). It was probably "
            "recovered after this worker was presumed dead; this result was not recorded."
        )


def completing(result: Any, finished: str, worker: str | None) -> Change:
    """Completed with ``result`` (fenced). Its checkpoint is dropped: nothing resumes a
    completed job, and the result is what it leaves."""

    def change(record: JobRecord) -> JobRecord:
        check_owned(record, worker, "complete")
        return record.evolve(
            status=JobStatus.COMPLETED,
            result=result,
            finished=finished,
            error_message=None,
            traceback=None,
            checkpoint_json=None,
            checkpoint_at=None,
        )

    return change


def settled(
    job_ids: Sequence[str], outcomes: Sequence[JobRecord | JobLedgerError]
) -> list[JobRecord]:
    """The completed records of a batch of completions (``outcomes`` in the order of
    ``job_ids``); if any was refused, :class:`JobConflict` naming each refused job and why
    (its ``refused`` maps job id to that error), after the others are logged."""
    done: list[JobRecord] = []
    refused: dict[str, JobLedgerError] = {}
    for job_id, outcome in zip(job_ids, outcomes, strict=True):
        if isinstance(outcome, JobLedgerError):
            refused[job_id] = outcome
        else:
            log.info("Completed job %s", job_id)
            done.append(outcome)
    if refused:
        error = JobConflict(
            f"{len(refused)} of {len(job_ids)} completions were refused (the other "
            f"{len(done)} are recorded): "
            + "; ".join(f"{job_id}: {exc}" for job_id, exc in refused.items())
        )
        error.refused = refused
        raise error
    return done


def failure_text(error: BaseException | str) -> tuple[str, str | None]:
    """The error message a failure stores, and the full traceback of an exception that
    has one (None otherwise); both storable whatever they hold. A failure from another
    process (:class:`ForeignFailure`) stores the message and traceback it carries."""
    if isinstance(error, ForeignFailure):
        return storable_text(error.text), (
            storable_text(error.trace) if error.trace is not None else None
        )
    text = storable_text(
        f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    )
    trace = None
    if isinstance(error, BaseException) and error.__traceback__ is not None:
        trace = storable_text(
            "".join(traceback.format_exception(type(error), error, error.__traceback__))
        )
    return text, trace


def failing(
    text: str,
    trace: str | None,
    now: dt.datetime,
    worker: str | None,
    retry_delay: float,
    max_retry_delay: float,
    *,
    cancelled: bool = False,
) -> Change:
    """A failed attempt (fenced): retried after the backoff or Failed, as the retry
    policy says, with ``trace`` kept. ``cancelled``: the attempt ended by raising
    JobCancelled, which asks for the cancel if no one had (the job ends Cancelled)."""

    def change(record: JobRecord) -> JobRecord:
        check_owned(record, worker, "fail")
        if cancelled and record.cancel_requested_at is None:
            record = record.evolve(cancel_requested_at=iso_utc(now))
        after = after_failure(record, text, now, retry_delay, max_retry_delay)
        return after.evolve(traceback=trace)

    return change


def log_failure(new: JobRecord, text: str, trace: str | None) -> None:
    """Log a recorded failure as a WARNING, with its traceback: shown without any logging
    set up, so that a failure's cause is on the console, not only in the job."""
    shown = ("\n" + trace.rstrip("\n")) if trace else ""
    if new.status is JobStatus.FAILED:
        log.warning(
            "Job %s failed for good after %d attempts: %s%s",
            new.job_id,
            new.attempts,
            text,
            shown,
        )
    else:
        log.warning(
            "Job %s failed (attempt %d of %d), retrying after %s: %s%s",
            new.job_id,
            new.attempts,
            new.max_attempts,
            new.run_after,
            text,
            shown,
        )


def requeueing(worker: str | None, now: str) -> Change:
    """Given back by its worker (a graceful stop; fenced): Queued again, ahead of the
    queue, the interrupted attempt not counted; Cancelled if its cancel was asked."""

    def change(record: JobRecord) -> JobRecord:
        check_owned(record, worker, "requeue")
        if record.cancel_requested_at is not None:
            return ended_cancelled(record, now, f"worker {worker} stopped before its handler")
        return record.evolve(
            status=JobStatus.QUEUED,
            attempts=max(0, record.attempts - 1),
            worker=None,
            recovered=True,
        )

    return change


def cancelling(job_id: str, now: str) -> Change:
    """A Queued job Cancelled; a Running one asked to stop: ``cancel_requested_at`` set,
    still Running under its worker, which ends the attempt (asked again: unchanged)."""

    def change(record: JobRecord) -> JobRecord:
        if not record.status.is_live:
            raise JobConflict(f"cannot cancel job {job_id}: it is already {record.status.value}")
        if record.status is JobStatus.RUNNING:
            if record.cancel_requested_at is not None:
                return record  # asked already: nothing to write
            return record.evolve(cancel_requested_at=now)
        return record.evolve(status=JobStatus.CANCELLED, finished=now, worker=None)

    return change


def retrying(job_id: str, next_seq: Callable[[], int]) -> Change:
    """Queued again with a fresh attempt count (last in FIFO order: ``next_seq``), if it
    is Failed or Cancelled."""

    def change(record: JobRecord) -> JobRecord:
        if record.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobConflict(
                f"cannot retry job {job_id}: it is {record.status.value}; "
                "only Failed or Cancelled jobs can be retried"
            )
        return record.evolve(
            status=JobStatus.QUEUED,
            attempts=0,
            finished=None,
            run_after=None,
            error_message=None,
            traceback=None,
            recovered=False,
            cancel_requested_at=None,  # a new run, not the one that was asked to stop
            seq=next_seq(),
        )

    return change
