"""The public Job view: a stored :class:`JobRecord` as the queue hands it out.

:class:`JobViews` makes one from a record: the payload decoded into its registered job
type (``@job_type``), or left the dict it is stored as, with a warning once per type that
cannot be (an unknown type, or a payload its class no longer accepts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ._errors import JobLedgerError
from ._job_attempt import Attempt
from ._job_fields import JobStatus
from ._job_progress import JobProgress
from ._job_record import JobRecord
from ._job_types import decode_payload, registered_types
from ._log import log

__all__ = ["Job", "JobViews"]


@dataclass(frozen=True)
class Job:
    """A job as the queue hands it out.

    ``payload`` is an instance of the registered job type (see :func:`jobledger.job_type`)
    or, for a dict job or an unknown type, the payload dict. ``raw`` is always the dict.
    """

    job_id: str
    type: str
    status: JobStatus
    payload: Any
    attempts: int
    max_attempts: int
    priority: int
    error_message: str | None
    result: Any
    worker: str | None
    created: str | None
    started: str | None
    finished: str | None
    run_after: str | None
    raw: dict[str, Any]
    known_type: bool = True
    #: The full Python traceback of the last failed attempt whose handler raised, or None.
    traceback: str | None = None
    #: The last acknowledged checkpoint of an earlier attempt (``checkpoint``), or None.
    checkpoint_data: Any = None
    #: The job's own timeout in seconds (``enqueue(..., timeout=)``), or None: its type's
    #: (``@job_type(..., timeout=)``), else the Worker's, applies. The running attempt's
    #: deadline, whichever it came from, is :attr:`deadline`.
    timeout: float | None = None
    #: When that checkpoint was stored (ISO 8601 UTC), or None.
    checkpoint_at: str | None = None
    #: The last progress report (``progress``): done, total, note and when, or None.
    progress_info: JobProgress | None = None
    #: When a cancel of this Running job was asked of its worker (``JobQueue.cancel``),
    #: or None. Stays set on the job after it ends (Cancelled, or Completed by a handler
    #: that returned a result anyway).
    cancel_requested_at: str | None = None
    #: The key that makes this job unique (``enqueue(..., unique_key=)``), or None.
    unique_key: str | None = None
    #: The named queue the job waits in (``enqueue(..., queue=)``; ``"default"``).
    queue: str = "default"
    #: The key its type's rate limit counts it under (``enqueue(..., rate_key=)``), or
    #: None (then the payload's field the limit names, else one key for the type).
    rate_key: str | None = None
    #: The running attempt, while a Worker runs this job's handler (else None).
    attempt: Attempt | None = dataclasses.field(default=None, repr=False, compare=False)

    def with_attempt(self, attempt: Attempt) -> Job:
        """This job with ``attempt`` attached (what a Worker hands its handler)."""
        # A copy of the fields as they are, not dataclasses.replace, which runs __init__
        # and cost 9 us a job: a Worker makes one per job it runs.
        new = object.__new__(Job)
        new.__dict__.update(self.__dict__)
        new.__dict__["attempt"] = attempt
        return new

    @property
    def deadline(self) -> dt.datetime | None:
        """When this attempt times out (aware UTC), or None: no timeout, or not running."""
        return self.attempt.deadline_at if self.attempt is not None else None

    @property
    def cancel_requested(self) -> bool:
        """Whether the queue has asked this running job to stop (``JobQueue.cancel``)."""
        return self.attempt is not None and self.attempt.cancel.is_set()

    def check(self) -> None:
        """Raise :class:`jobledger.JobCancelled` if this job's cancel was asked for, or
        :class:`jobledger.JobTimeout` if its attempt is past its deadline; else return.
        Call it between steps of a long handler (a thread handler is only told, never
        stopped). Does nothing outside a running attempt."""
        if self.attempt is not None:
            self.attempt.check()

    def progress(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """Report how far this running job is (``done`` of ``total``, with an optional
        ``note``); cheap: reports are coalesced, not one durable write each.

        A Worker keeps the latest report in memory and writes it at most once a second
        per job, and when the attempt ends, without fsync: a crash may lose the last
        second of progress. Shown by ``jobledger jobs list``/``show`` and read back as
        ``progress_info``. ``done``/``total`` are finite numbers (stored as floats);
        ``note`` a string (cut to 200 characters)."""
        if self.attempt is None or self.attempt.on_progress is None:
            raise JobLedgerError(
                f"job {self.job_id}: progress() is only for a job whose handler a Worker runs"
            )
        self.attempt.on_progress(done, total, note)

    def checkpoint(self, data: Any) -> None:
        """Store ``data`` (JSON-serialisable) durably as this job's checkpoint before
        returning: a later attempt of this job finds it in ``checkpoint_data``.

        Exactly as given (JSON's types: a tuple comes back a list, a non-string key a
        string), at most ``jobledger.MAX_CHECKPOINT_BYTES`` of JSON (InvalidPayload
        beyond). Fenced: a worker whose attempt is no longer the job's own (it was
        presumed dead and the job recovered) gets JobConflict and stores nothing. A
        Completed job's checkpoint is dropped; a Failed or Cancelled one keeps it, for a
        retry to resume from."""
        if self.attempt is None or self.attempt.on_checkpoint is None:
            raise JobLedgerError(
                f"job {self.job_id}: checkpoint() is only for a job whose handler a Worker runs"
            )
        self.attempt.on_checkpoint(data)


class JobViews:
    """Turns records into :class:`Job` views, warning once per type it cannot decode
    (each queue has its own, so each warns once)."""

    def __init__(self) -> None:
        self._warned_types: set[str] = set()

    def view(self, record: JobRecord) -> Job:
        """The view of ``record``: its payload as its registered type when it has one."""
        try:
            payload, known = decode_payload(record.type, dict(record.payload), record.job_id)
        except (TypeError, ValueError) as exc:
            log.warning(
                "Job %s of type %s could not be turned into its class (%s); "
                "handing out the raw dict",
                record.job_id,
                record.type,
                exc,
            )
            payload, known = dict(record.payload), False
        if not known and record.type not in self._warned_types:
            self._warned_types.add(record.type)
            if registered_types():
                log.warning(
                    "Job %s has type %s, which no @job_type registers here; it is "
                    "kept and handed out as a dict",
                    record.job_id,
                    record.type,
                )
        return Job(
            job_id=record.job_id,
            type=record.type,
            status=record.status,
            payload=payload,
            attempts=record.attempts,
            max_attempts=record.max_attempts,
            priority=record.priority,
            error_message=record.error_message,
            result=record.result,
            worker=record.worker,
            created=record.created,
            started=record.started,
            finished=record.finished,
            run_after=record.run_after,
            raw=dict(record.payload),
            known_type=known,
            traceback=record.traceback,
            timeout=record.timeout,
            checkpoint_data=(
                None if record.checkpoint_json is None else json.loads(record.checkpoint_json)
            ),
            checkpoint_at=record.checkpoint_at,
            progress_info=JobProgress.of(record),
            cancel_requested_at=record.cancel_requested_at,
            unique_key=record.unique_key,
            queue=record.queue,
            rate_key=record.rate_key,
        )
