"""An attempt's timeout: which one applies, the deadline it gives, and the message of an
attempt that passed it.

Precedence: the job's own (``enqueue(..., timeout=)``, stored with the job), then its
type's (``@job_type(..., timeout=)``, read from this process's registry when the attempt
starts), then the Worker's (``Worker(..., timeout=)``); none of them: no deadline.
"""

from __future__ import annotations

from ._errors import JobTimeout
from ._isolation import ProcessTimeout
from ._job_types import type_timeout
from ._job_view import Job

__all__ = ["timed_out_text", "timeout_of"]


def timeout_of(job: Job, fallback: float | None) -> tuple[float | None, str]:
    """``job``'s timeout in seconds (or None) and where it comes from; ``fallback`` is the
    Worker's."""
    if job.timeout is not None:
        return job.timeout, "the job's own timeout"
    of_type = type_timeout(job.type)
    if of_type is not None:
        return of_type, f"the timeout of job type {job.type}"
    return fallback, "the Worker's timeout"


def timed_out_text(job: Job, exc: JobTimeout, fallback: float | None) -> str:
    """The error message of an attempt that timed out: how long, which timeout, and how
    its process was stopped (no traceback: where the handler was is no news)."""
    seconds, source = timeout_of(job, fallback)
    why = [source] if seconds is not None else []
    if isinstance(exc, ProcessTimeout):
        why.append(exc.how)
    return f"timed out after {exc.seconds:g} s" + (f" ({'; '.join(why)})" if why else "")
