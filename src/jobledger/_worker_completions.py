"""How a :class:`~jobledger.Worker` records its finished jobs' completions (a base class
of it): together, with the thread's next claim (group commit), or on their own once the
oldest has waited ``RECORD_WITHIN`` (``_prefetch.py``), and each reported."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._errors import JobConflict, JobLedgerError
from ._log import log
from ._prefetch import RECORD_WITHIN
from ._queue import JobQueue
from ._worker_report import JobReporter

__all__ = ["CompletionRecords"]


class CompletionRecords:
    """The recording of completions of :class:`~jobledger.Worker` (its base class)."""

    queue: JobQueue
    monotonic: Callable[[], float]
    processed: int
    reporter: JobReporter
    _guard: threading.Lock
    _done: list[tuple[str, Any]]
    _oldest_done: float | None
    _took: dict[str, tuple[str, float]]
    _job_started: dict[int, float]

    def _recorder(self, stop: threading.Event) -> None:
        """Record completions left waiting behind a job that runs long: the check after
        each job comes only when that job ends."""
        while not stop.wait(RECORD_WITHIN / 2):
            if not (self._overdue() and self._stuck()):
                continue
            try:
                self._record_done()
            except JobLedgerError as exc:  # the jobs run again after recovery, as on a crash
                log.warning("could not record finished jobs' completions: %s", exc)

    def _stuck(self) -> bool:
        """Whether a job here has been running for ``RECORD_WITHIN`` or longer."""
        now = self.monotonic()
        with self._guard:
            return any(now - t >= RECORD_WITHIN for t in self._job_started.values())

    def _overdue(self) -> bool:
        """Whether the oldest unrecorded completion has waited ``RECORD_WITHIN``."""
        with self._guard:
            oldest = self._oldest_done
        return oldest is not None and self.monotonic() - oldest >= RECORD_WITHIN

    def _take_done(self) -> tuple[list[tuple[str, Any]], dict[str, tuple[str, float]], float]:
        """The completions waiting to be recorded (taken: no other thread records them),
        their jobs' (type, seconds), and when the oldest finished."""
        with self._guard:
            pending, self._done = self._done, []
            oldest, self._oldest_done = self._oldest_done, None
            took = {job_id: self._took.pop(job_id, ("?", 0.0)) for job_id, _ in pending}
        return pending, took, oldest if oldest is not None else self.monotonic()

    def _record_done(self) -> None:
        """Record the completions that finished jobs are waiting for, as one batch."""
        pending, took, _ = self._take_done()
        if not pending:
            return
        conflict: JobConflict | None = None
        try:
            if len(pending) == 1:
                self.queue.complete(*pending[0])
                recorded = 1
            else:
                recorded = self.queue.record_completions(pending)
        except JobConflict as exc:
            conflict, recorded = exc, len(pending) - max(1, len(exc.refused))
        self._recorded(pending, took, recorded, conflict)

    def _recorded(
        self,
        pending: list[tuple[str, Any]],
        took: dict[str, tuple[str, float]],
        recorded: int,
        conflict: JobConflict | None,
    ) -> None:
        """Count the recorded completions and report each finished job (refused ones as
        such: ``conflict`` names them)."""
        refused: set[str] = set()
        if conflict is not None:
            refused = set(conflict.refused) or {pending[0][0]}
            log.warning("%s", conflict)
        with self._guard:
            self.processed += recorded
        for job_id, _ in pending:
            job_type, seconds = took[job_id]
            if job_id in refused:
                self.reporter.finished(
                    job_id, job_type, "refused", seconds, "(its completion was refused)"
                )
            else:
                self.reporter.finished(job_id, job_type, "done", seconds)
