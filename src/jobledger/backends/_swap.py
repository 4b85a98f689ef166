"""What a backend's ``swap`` writes, and when: the same on every backend.

A swap pairs the record of a job as a worker claimed it with the record to write in its
place (a completion, a failure, a requeue the policy computed from the claim). It writes
only while the stored job still holds that claim (:func:`holds_claim`), and only the
fields in which the new record differs from the claimed one (:func:`swapped`): the
PostgreSQL backend's guarded UPDATE (``postgres/_queries._swapped``) says the same in SQL.
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import JobLedgerError
from .._job_record import JobRecord, JobStatus

__all__ = ["NotHeld", "each_once", "holds_claim", "swapped", "swapping"]


def each_once(pairs: list[tuple[JobRecord, JobRecord]]) -> None:
    """A swap takes each job once (one statement cannot write a row twice): ValueError."""
    if len({claimed.job_id for claimed, _ in pairs}) < len(pairs):
        raise ValueError("swap: a job is given twice; give each job once")


def holds_claim(stored: JobRecord, claimed: JobRecord) -> bool:
    """Whether ``stored`` is still the claim ``claimed`` was: the same job, Running under
    the same worker, in the same attempt, since the same start, and no cancel asked of it
    since (``swap``'s fencing; a cancel-requested job is left to the locking path, whose
    policy ends its failure or requeue Cancelled)."""
    return (
        stored.status is JobStatus.RUNNING
        and stored.cancel_requested_at is None
        and stored.job_id == claimed.job_id
        and stored.worker == claimed.worker
        and stored.attempts == claimed.attempts
        and stored.started == claimed.started
    )


def swapped(stored: JobRecord, claimed: JobRecord, new: JobRecord) -> JobRecord:
    """``stored`` with the fields in which ``new`` differs from ``claimed``: what a swap
    writes (the rest, a payload say, is kept as stored)."""
    changes = {
        name: b
        for name, a in claimed.__dict__.items()
        if (b := new.__dict__[name]) is not a and a != b
    }
    return stored.evolve(**changes) if changes else stored


class NotHeld(JobLedgerError):
    """A swap's job no longer holds the claim it was paired with (nothing is written)."""


def swapping(claimed: JobRecord, new: JobRecord) -> Callable[[JobRecord], JobRecord]:
    """A swap as a ``transition`` change: ``new``'s changes to the stored record, only
    while it holds ``claimed`` (else :class:`NotHeld`)."""

    def change(stored: JobRecord) -> JobRecord:
        if not holds_claim(stored, claimed):
            raise NotHeld(f"job {claimed.job_id} no longer holds the claim")
        return swapped(stored, claimed, new)

    return change
