"""The changes a running attempt makes to its job's record, and how a cancelled job ends.

- A progress report and a checkpoint are fenced by the attempt: they apply only to a job
  still Running under the same worker in the same attempt (``attempts`` and ``started``
  as the claim set them). A worker presumed dead, whose job was recovered and perhaps
  claimed again, gets :class:`JobConflict` and writes nothing: it never overwrites the
  progress or the checkpoint of the attempt that replaced it.
- A checkpoint is stored as its JSON text (``checkpoint_json``), at most
  :data:`MAX_CHECKPOINT_BYTES` of UTF-8, so that it reads back exactly on every backend.
- A job whose cancel was asked for (``cancel_requested_at``) is never run again: however
  its attempt ends short of a result (its handler stopped, failed, its worker died or
  stopped first), it becomes Cancelled (:func:`ended_cancelled`). A handler that returns
  a result anyway completes its job: the work is done, and its result is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from ._errors import InvalidPayload, JobConflict
from ._job_fields import JobStatus
from ._job_progress import JobProgress
from ._job_record import JobRecord
from ._job_types import check_storable

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "AttemptId",
    "checkpoint_text",
    "checkpointing",
    "ended_cancelled",
    "reporting",
]

#: The most a checkpoint may hold: bytes of its JSON text (UTF-8). It is written whole,
#: durably, at every ``job.checkpoint``: keep large state (weights, optimizer state) in
#: files and checkpoint their paths.
MAX_CHECKPOINT_BYTES = 1 << 20

_MiB = 1 << 20

#: A change of one job's record (as ``_job_transitions.Change``).
Change = Callable[[JobRecord], JobRecord]


class AttemptId(NamedTuple):
    """One attempt of one job: the worker that claimed it, its attempt number and the
    time the claim stamped (``started``), as the claimed record holds them."""

    job_id: str
    worker: str | None
    attempts: int
    started: str | None

    def describe(self) -> str:
        """``attempt 2 under worker w``, for messages."""
        return f"attempt {self.attempts} under worker {self.worker}"


def _check_attempt(record: JobRecord, attempt: AttemptId, action: str) -> None:
    """Raise :class:`JobConflict` unless ``record`` is Running in ``attempt``."""
    if (
        record.status is not JobStatus.RUNNING
        or record.worker != attempt.worker
        or record.attempts != attempt.attempts
        or record.started != attempt.started
    ):
        now = record.status.value
        if record.status is JobStatus.RUNNING:
            now += f" in attempt {record.attempts} under worker {record.worker}"
        raise JobConflict(
            f"cannot {action} job {record.job_id}: it is {now}, not Running in "
            f"{attempt.describe()}. It was probably recovered after this worker was "
            "presumed dead; nothing was written."
        )


def _with_progress(record: JobRecord, report: JobProgress) -> JobRecord:
    return record.evolve(
        progress_done=report.done,
        progress_total=report.total,
        progress_note=report.note,
        progress_at=report.at,
    )


def reporting(attempt: AttemptId, report: JobProgress) -> Change:
    """The change storing ``report`` as the job's progress (fenced by the attempt)."""

    def change(record: JobRecord) -> JobRecord:
        _check_attempt(record, attempt, "record the progress of")
        return _with_progress(record, report)

    return change


def checkpoint_text(data: Any, job_id: str) -> str:
    """``data`` as the JSON text a checkpoint stores; :class:`InvalidPayload` (before
    anything is written) for what JSON cannot hold exactly, or more than
    :data:`MAX_CHECKPOINT_BYTES`."""
    what = f"the checkpoint of job {job_id}"
    check_storable(data, what, "checkpoint")
    # ensure_ascii=False: the limit counts the UTF-8 bytes stored, not escapes.
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > MAX_CHECKPOINT_BYTES:
        raise InvalidPayload(
            f"{what} is {size / _MiB:.1f} MiB of JSON, more than the "
            f"{MAX_CHECKPOINT_BYTES // _MiB} MiB a checkpoint may hold "
            "(jobledger.MAX_CHECKPOINT_BYTES); nothing was stored. Keep large state in "
            "files and checkpoint their paths"
        )
    return text


def checkpointing(
    attempt: AttemptId, text: str, at: str, report: JobProgress | None = None
) -> Change:
    """The change storing a checkpoint's JSON ``text`` (fenced by the attempt), with the
    progress report held then, if any (one write for both)."""

    def change(record: JobRecord) -> JobRecord:
        _check_attempt(record, attempt, "store a checkpoint of")
        new = record.evolve(checkpoint_json=text, checkpoint_at=at)
        return new if report is None else _with_progress(new, report)

    return change


def ended_cancelled(record: JobRecord, finished: str, why: str) -> JobRecord:
    """``record``, a cancel-requested job whose attempt ended without a result, as
    Cancelled: never retried (its traceback, if any, is the caller's to set)."""
    asked = record.cancel_requested_at or finished
    return record.evolve(
        status=JobStatus.CANCELLED,
        finished=finished,
        worker=None,
        run_after=None,
        error_message=f"cancelled while running (asked at {asked}): {why}",
        traceback=None,
    )
