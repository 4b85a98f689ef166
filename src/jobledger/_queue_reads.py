"""The reading and pruning methods of :class:`~jobledger.JobQueue` (a base class of it):
what a queue shows of its jobs (each a read through the read-only twin until the queue
has written: see ``JobQueue._reading``), how a caller waits for a job's outcome
(``_waiting.py``), and the prune of finished jobs."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from ._clock import Clock, iso_utc
from ._durations import to_timedelta
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_view import Job
from ._log import log
from ._waiting import DEFAULT_POLL, FinishWatch, wait_limits, wait_sync
from .backends._contract import JobBackend, QueuedCounts

__all__ = ["QueueReads"]


def _finish_order(record: JobRecord) -> tuple[str, str]:
    """How finished jobs are listed: oldest finish first, then by id."""
    return (record.finished or "", record.job_id)


class QueueReads:
    """What :class:`~jobledger.JobQueue` shows of its jobs, and its prune (these methods
    use its clock, its backends and its ``Job`` views)."""

    clock: Clock
    dir: str
    backend: JobBackend
    _finished: FinishWatch
    _job: Callable[[JobRecord], Job]

    @property
    def reader(self) -> JobBackend:
        raise NotImplementedError

    def _opened(self) -> JobBackend:
        raise NotImplementedError

    def _reading(self) -> JobBackend:
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------------

    def wait(
        self,
        job_id: str,
        timeout: dt.timedelta | float | None = None,
        *,
        poll_interval: dt.timedelta | float = DEFAULT_POLL,
    ) -> Any:
        """Wait until the job finishes and return its result (the handler's return value,
        as stored: JSON types). Raises :class:`JobFailed` if it failed for good (its
        ``error_message`` and ``traceback`` attached), :class:`JobCancelled` if it was
        cancelled, :class:`JobNotFound` for an unknown id, and :class:`WaitTimeout` (a
        ``TimeoutError``) once ``timeout`` (a timedelta or seconds; None: no limit) has
        passed with the job still Queued or Running; a finished job answers at once.

        A read: it never writes, recovers or repairs (a job whose worker died stays
        Running until a writer recovers it). It wakes at once for a job finished through
        this queue object, and on PostgreSQL for one finished by any process (a
        notification, one listening session per queue); a folder is read again after
        10 ms, doubling up to ``poll_interval`` (1 s): another process's completion is
        seen within about that. On PostgreSQL the job is read again every
        ``poll_interval`` too, in case a notification was lost.
        """
        limit, poll = wait_limits(timeout, poll_interval)
        return wait_sync(
            job_id,
            lambda: self._reading().get(job_id),
            self._finished,
            lambda callback: self.reader.watch_finished(callback),
            timeout=limit,
            poll=poll,
            where=self.dir,
        )

    def get(self, job_id: str) -> Job | None:
        """The job, or None if there is no such id. Reads only (a corrupt job file is
        reported and left as it is)."""
        record = self._reading().get(job_id)
        return self._job(record) if record is not None else None

    def list(self, status: JobStatus | str | None = None) -> builtins.list[Job]:
        """Jobs with ``status`` (all when None). Live jobs come in serving order; listing
        finished jobs reads their files (history), so it costs what history costs.

        Reads only: jobs of dead workers are shown Running, as stored (a writer, or
        :meth:`recover`, gives them back to the queue); nothing is locked or repaired."""
        wanted = JobStatus(status) if status is not None else None
        backend = self._reading()
        if wanted is not None and wanted.is_live:
            records = backend.live(wanted)
        else:
            records = backend.live()
            finished = [r for r in backend.all_records() if not r.status.is_live]
            finished.sort(key=_finish_order)
            records += finished
        return [self._job(r) for r in records if wanted is None or r.status is wanted]

    def counts(self) -> dict[str, int]:
        """Jobs per status (``"Queued"``, ``"Running"``, ``"Completed"``...), from the index
        (computed in memory from the job files when queue.json is missing or behind).
        Reads only."""
        return self._reading().counts()

    def pending_count(self, types: Iterable[str] | None = None) -> int:
        """Queued jobs (of these types), due now or later."""
        wanted = frozenset(types) if types is not None else None
        return self._opened().queued_count(wanted)

    def queued_by_type(self, queues: Iterable[str] | None = None) -> dict[str, QueuedCounts]:
        """Queued jobs per type (only types that have some): how many are due now, how
        many are delayed (a later ``run_after``) and the earliest of those. Cheap: the
        index (files) or one aggregate query (PostgreSQL)."""
        of_queues = frozenset(queues) if queues is not None else None
        return self._opened().queued_by_type(iso_utc(self.clock.now()), of_queues)

    def checkpoint(self) -> None:
        """Bring ``queue.json`` up to date now. Under light use it always is; while the
        queue is busy it trails the job files by up to 200 ms (the changes in between are
        in ``.queue.journal``). Closing the queue, an idle worker and interpreter exit
        checkpoint too."""
        self.backend.checkpoint()

    def live_workers(self) -> builtins.list[str]:
        """Ids of the workers whose process is alive now."""
        return self.backend.live_workers()

    # -- maintenance ----------------------------------------------------------------------

    def prune(
        self,
        older_than: dt.timedelta | float,
        *,
        dry_run: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished jobs (Completed, Failed, Cancelled) that finished more than
        ``older_than`` (a timedelta or seconds, 0 or more) ago. Returns how many.

        It deletes in batches (up to 2,000 jobs on PostgreSQL, each its own short
        transaction; 500 job files on a folder, each under the queue lock on its own;
        after each, a pause as long as it took), oldest first on PostgreSQL, so that
        workers go on while a large history is pruned. ``on_batch(n)`` is called after
        each batch is stored, with how many it deleted: a progress report. If it raises,
        or the prune is interrupted (KeyboardInterrupt), the prune stops there: the
        batches before stay deleted, the rest stays, and nothing is left half done; run
        it again to go on. A finished job being changed at that very moment (a retry) is
        left for the next prune.

        ``dry_run=True`` deletes nothing and returns how many it would delete; like every
        read it locks, recovers and creates nothing (:meth:`prunable` lists them)."""
        if dry_run:
            return len(self.prunable(older_than))
        age = to_timedelta(older_than, "older_than")
        cutoff = iso_utc(self.clock.now() - age)
        n = self._opened().prune(cutoff, on_batch)
        log.info("Pruned %d finished jobs older than %s", n, age)
        return n

    def prunable(self, older_than: dt.timedelta | float) -> builtins.list[Job]:
        """The finished jobs :meth:`prune` with the same ``older_than`` would delete now,
        oldest first. Reads only."""
        cutoff = iso_utc(self.clock.now() - to_timedelta(older_than, "older_than"))
        old = [
            r
            for r in self._reading().all_records()
            if not r.status.is_live and (r.finished or "") < cutoff
        ]
        old.sort(key=_finish_order)
        return [self._job(r) for r in old]
