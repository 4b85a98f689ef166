"""A running attempt as its handler sees it through ``job``: the deadline, a cancel
request, progress and checkpoints.

The Worker makes one :class:`Attempt` per attempt it runs and hands the handler the Job
with it attached (``Job.with_attempt``). The Worker (thread or process isolation) decides
what the sinks do: store a checkpoint durably before ``checkpoint`` returns, coalesce
progress, set ``cancel`` when the queue asks for it. A Job outside a running attempt has
no Attempt: its ``deadline`` is None, ``cancel_requested`` False, ``check()`` does
nothing, and ``progress``/``checkpoint`` raise (there is no attempt to record them for).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from ._errors import JobCancelled, JobTimeout

__all__ = ["Attempt", "CheckpointSink", "ProgressSink"]

#: Records a progress report: (done, total, note).
ProgressSink = Callable[[float, "float | None", "str | None"], None]
#: Stores a checkpoint durably before returning.
CheckpointSink = Callable[[Any], None]


class Attempt:
    """One running attempt of one job: what ``job.check()``, ``job.deadline``,
    ``job.cancel_requested``, ``job.progress()`` and ``job.checkpoint()`` reach.

    ``deadline`` is a wall-clock time (``time.time()`` seconds) or None; ``timeout`` the
    seconds it was computed from (for the error message). ``clock`` is injectable."""

    def __init__(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        on_progress: ProgressSink | None = None,
        on_checkpoint: CheckpointSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = deadline
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        self.clock = clock
        #: Set when the queue asks this attempt to stop (``JobQueue.cancel``).
        self.cancel = threading.Event()

    @property
    def deadline_at(self) -> dt.datetime | None:
        """The deadline as an aware UTC datetime, or None."""
        if self.deadline is None:
            return None
        return dt.datetime.fromtimestamp(self.deadline, dt.timezone.utc)

    def timed_out(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and self.clock() >= self.deadline

    def check(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was asked for, :class:`JobTimeout` if
        the deadline has passed; else return."""
        if self.cancel.is_set():
            raise JobCancelled(self.job_id)
        if self.timed_out():
            raise JobTimeout(self.job_id, self.timeout if self.timeout is not None else 0.0)
