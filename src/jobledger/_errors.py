"""Every error jobledger raises on purpose.

The hierarchy::

    JobLedgerError                 base of everything below; catch this to catch all
    ├── ConfigError (ValueError)   a bad config key, type, value or unreadable config file
    ├── InvalidNameError (ValueError)
    │                              an account, type, task or job id that cannot be stored
    ├── InvalidPayload (TypeError) a payload or result that cannot be stored as JSON: a
    │                              type JSON lacks, too deep, a lone surrogate, NaN, a
    │                              result over MAX_RESULT_BYTES
    ├── AlreadyRunning             another live process holds the run lease of a task set
    ├── JobNotFound (KeyError)     no job with that id in the queue
    ├── JobConflict                the job's state does not allow it: completing a job that
    │                              another worker now runs, cancelling a finished job...
    ├── JobTimeout                 a running attempt went past its timeout (``job.check()``)
    ├── JobCancelled               the job was cancelled (``job.check()``, ``JobQueue.wait``)
    ├── JobFailed                  ``JobQueue.wait``: the job failed for good
    ├── WaitTimeout (TimeoutError) ``JobQueue.wait``: the job did not finish in time
    └── StorageError (OSError)     the disk or folder refused a read or write
                                   (permission, disk full, a folder where a file should be)

Every message says what happened, where (path, key, account) and what to do about it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

__all__ = [
    "AlreadyRunning",
    "ConfigError",
    "ForeignFailure",
    "InvalidNameError",
    "InvalidPayload",
    "JobCancelled",
    "JobConflict",
    "JobFailed",
    "JobLedgerError",
    "JobNotFound",
    "JobTimeout",
    "LeaseHolder",
    "StorageError",
    "WaitTimeout",
]


class JobLedgerError(Exception):
    """Base class of every error raised by jobledger."""


class ConfigError(JobLedgerError, ValueError):
    """The configuration is wrong: an unknown key, a wrong type or value, an unreadable file."""


class InvalidNameError(JobLedgerError, ValueError):
    """A name (account, type, task, job id) cannot be stored safely."""


class InvalidPayload(JobLedgerError, TypeError):
    """A payload or result cannot be stored as JSON; nothing was written.

    A TypeError, as the API promised for a payload JSON cannot represent, and a
    JobLedgerError. The message names where in the value the problem is, e.g.
    ``payload['a'][0]``: a type JSON has no form for, nesting deeper than
    ``jobledger.MAX_JSON_DEPTH`` levels, a lone surrogate or a NUL character in a string or
    key, a NaN or infinite float; or a job's result over ``jobledger.MAX_RESULT_BYTES``
    (16 MiB of JSON), the message then naming the job and the limit."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a run lease: process id, host name and since when (ISO 8601 UTC)."""

    pid: int | None
    host: str | None
    since: str | None

    def describe(self) -> str:
        """A short human description, e.g. ``pid 4242 on host1 since 2025-01-20T10:30:00.000Z``."""
        if self.pid is None and self.host is None:
            return "an unknown process"
        parts = [f"pid {self.pid}" if self.pid is not None else "unknown pid"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.since:
            parts.append(f"since {self.since}")
        return " ".join(parts)


class AlreadyRunning(JobLedgerError):
    """Another live process holds the run lease of this task set.

    ``holder`` names it (pid, host, since when) where that is known.
    """

    def __init__(self, what: str, holder: LeaseHolder, where: str) -> None:
        self.holder = holder
        self.where = where
        super().__init__(
            f"{what} is already running in {holder.describe()} (lease {where}). "
            "Wait for that run to finish, pass wait=True to wait for it, "
            "or stop that process if it is stuck."
        )


class JobNotFound(JobLedgerError, KeyError):
    """No job with this id exists in the queue."""

    def __init__(self, job_id: str, where: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"no job {job_id!r} in the queue at {where}; check the id "
            "(`jobledger jobs list` shows them)"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class JobConflict(JobLedgerError):
    """The job's current state does not allow this change; nothing was written.

    From a batch (``complete_many``), ``refused`` maps each refused job id to its error
    (the rest of the batch was written); empty otherwise."""

    refused: dict[str, JobLedgerError]

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.refused = {}


class StorageError(JobLedgerError, OSError):
    """A read or write failed; the previous state on disk is left intact (unless the
    failure came after the replace, while making it durable: the message then says so)."""

    def __init__(
        self,
        action: str,
        path: str | os.PathLike[str],
        cause: OSError,
        *,
        replaced: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.cause = cause
        hint = _HINTS.get(cause.errno or 0, "check the path, its permissions and free space")
        outcome = (
            "The new content is in place but may not survive a power cut."
            if replaced
            else "The previous state was left intact."
        )
        super().__init__(
            cause.errno,
            f"could not {action} {self.path}: {cause.strerror or cause}; {hint}. {outcome}",
        )

    def __str__(self) -> str:
        return str(self.args[1])


_HINTS = {
    errno.EACCES: "check that this user may write to the folder (permissions, ownership)",
    errno.EPERM: "check that this user may write to the folder (permissions, ownership)",
    errno.EROFS: "the file system is read-only; point the state folder at a writable place",
    errno.ENOSPC: "the disk is full; free some space (see `jobledger du` and `jobledger cleanup`)",
    errno.EDQUOT: "the disk quota is exhausted; free some space or raise the quota",
    errno.EISDIR: "a folder stands where a file should be; move it away",
    errno.ENOTDIR: "a file stands where a folder should be; move it away",
}


class JobTimeout(JobLedgerError):
    """A running attempt went past its timeout: raised by ``job.check()`` in the handler
    (a process handler is stopped instead); the attempt fails and is retried per
    ``max_attempts``."""

    def __init__(self, job_id: str, seconds: float) -> None:
        self.job_id = job_id
        self.seconds = seconds
        super().__init__(f"job {job_id} timed out after {seconds:g} s")


class JobCancelled(JobLedgerError):
    """The job was cancelled: raised by ``job.check()`` in the handler of a running job
    whose cancel was asked for, and by ``JobQueue.wait`` for a Cancelled job. A cancelled
    job is never retried."""

    def __init__(self, job_id: str, where: str = "") -> None:
        self.job_id = job_id
        at = f" (queue at {where})" if where else ""
        super().__init__(f"job {job_id} was cancelled{at}")


class ForeignFailure(JobLedgerError):
    """An attempt that failed in another process (``Worker(isolation="process")``), as
    text: ``text`` is the error message its job stores (``"ValueError: bad input"``, or
    how the job's process died), ``trace`` the handler's traceback there, or None."""

    def __init__(self, text: str, trace: str | None = None) -> None:
        self.text = text
        self.trace = trace
        super().__init__(text)


class JobFailed(JobLedgerError):
    """Raised by ``JobQueue.wait`` for a job that failed for good (status Failed: its last
    attempt raised and ``max_attempts`` was reached, or its worker died once too often).

    ``job_id``, ``error_message`` (the stored ``Job.error_message``), ``traceback`` (the
    handler's traceback, or None) and ``attempts`` are attributes; the message carries the
    error and the traceback too, so a log line of this exception shows the cause."""

    def __init__(
        self,
        job_id: str,
        error_message: str | None,
        traceback: str | None,
        attempts: int,
        where: str = "",
    ) -> None:
        self.job_id = job_id
        self.error_message = error_message
        self.traceback = traceback
        self.attempts = attempts
        at = f" (queue at {where})" if where else ""
        tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
        text = (
            f"job {job_id} failed after {tries}{at}: {error_message or 'no error message'}; "
            "`jobledger jobs show` shows it and `JobQueue.retry` runs it again"
        )
        if traceback:
            text += "\n" + traceback.rstrip("\n")
        super().__init__(text)


class WaitTimeout(JobLedgerError, TimeoutError):
    """``JobQueue.wait`` ran out of time before the job finished; the job itself is left
    as it was (still Queued or Running). A builtin :class:`TimeoutError` too, so
    ``except TimeoutError`` catches it, as it catches ``asyncio.wait_for``'s."""

    def __init__(self, job_id: str, seconds: float, status: str, where: str = "") -> None:
        self.job_id = job_id
        self.seconds = seconds
        self.status = status
        at = f" (queue at {where})" if where else ""
        super().__init__(
            f"job {job_id} is still {status} after waiting {seconds:g} s{at}; wait again "
            "(a longer timeout), or cancel it with `JobQueue.cancel`"
        )

    def __str__(self) -> str:
        return str(self.args[0])
