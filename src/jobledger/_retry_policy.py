"""The retry policy: what a failed attempt, or a worker's death, leads to.

A job is retried until it has had ``max_attempts`` attempts in all, then Failed for good.
A failed attempt is retried after an exponential backoff (``retry_delay`` doubled per
attempt, capped at ``max_retry_delay``); a job whose worker died goes back to the front of
the queue at once (its attempt counted, so a job that kills its worker cannot loop).
A job whose cancel was asked while it ran is neither: it ends Cancelled.
"""

from __future__ import annotations

import datetime as dt

from ._attempt_changes import ended_cancelled
from ._clock import iso_utc
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._log import log

__all__ = ["after_failure", "after_worker_died", "backoff_seconds"]


def backoff_seconds(attempts: int, retry_delay: float, max_retry_delay: float) -> float:
    """How long a job waits after its ``attempts``-th attempt failed: ``retry_delay``
    after the first, doubled for each further one, never more than ``max_retry_delay``."""
    doubled: float = retry_delay * 2 ** max(0, attempts - 1)
    return min(max_retry_delay, doubled)


def _failed_for_good(record: JobRecord, message: str, finished: str) -> JobRecord:
    return record.evolve(
        status=JobStatus.FAILED,
        error_message=message,
        finished=finished,
        worker=None,
        traceback=None,
    )


def after_failure(
    record: JobRecord,
    text: str,
    now: dt.datetime,
    retry_delay: float,
    max_retry_delay: float,
) -> JobRecord:
    """``record`` after its attempt failed with ``text``: Queued again after the backoff,
    or Failed past ``max_attempts`` (its traceback cleared: the caller sets its own);
    Cancelled if its cancel was asked."""
    if record.cancel_requested_at is not None:
        return ended_cancelled(record, iso_utc(now), f"the attempt ended with {text}")
    if record.attempts >= record.max_attempts:
        return _failed_for_good(record, text, iso_utc(now))
    delay = backoff_seconds(record.attempts, retry_delay, max_retry_delay)
    return record.evolve(
        status=JobStatus.QUEUED,
        error_message=text,
        worker=None,
        run_after=iso_utc(now + dt.timedelta(seconds=delay)),
        recovered=False,
    )


def after_worker_died(record: JobRecord, now: str) -> JobRecord:
    """``record``, left Running by a dead worker: back to the front of the queue, or
    Failed past ``max_attempts``; either is logged as a warning naming the worker."""
    reason = (
        f"worker {record.worker} died while running this job "
        f"(attempt {record.attempts} of {record.max_attempts})"
    )
    if record.cancel_requested_at is not None:
        log.warning("Job %s cancelled: %s after its cancel was asked", record.job_id, reason)
        return ended_cancelled(record, now, reason)
    if record.attempts >= record.max_attempts:
        log.warning("Job %s failed for good: %s", record.job_id, reason)
        return _failed_for_good(record, reason + "; not retried", now)
    log.warning("Recovered job %s: %s; it is served first", record.job_id, reason)
    return record.evolve(
        status=JobStatus.QUEUED,
        worker=None,
        recovered=True,
        error_message=reason,
        traceback=None,
    )
