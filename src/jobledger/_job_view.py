"""The public Job view: a stored :class:`JobRecord` as the queue hands it out.

:class:`JobViews` makes one from a record: the payload decoded into its registered job
type (``@job_type``), or left the dict it is stored as, with a warning once per type that
cannot be (an unknown type, or a payload its class no longer accepts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._job_fields import JobStatus
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
        )
