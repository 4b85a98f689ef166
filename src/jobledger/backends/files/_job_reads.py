"""The files job backend's reads from its index, its history's maintenance (prune,
clear), its workers' liveness locks and its watches: a base class of ``FilesJobBackend``
(``jobs.py``), each read under the queue lock (a writer's) or over a fresh view (a
read-only backend's): see ``FilesJobBackend.locked``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from ..._job_record import JobRecord, JobStatus
from .._contract import QueuedCounts
from . import _queue_history as history
from ._cancel_looks import CancelLooks
from ._job_files import job_ids_changed_since
from ._locks import ProcessLock
from ._queue_index import QueueIndex
from ._workers import WorkerLocks

__all__ = ["JobReads"]


def _nothing() -> None:
    return None


class JobReads:
    """Reads, history, workers and watches of ``FilesJobBackend`` (its base class)."""

    jobs_dir: str
    workers_dir: str
    prune_batch: int
    prune_pause: float
    _index: QueueIndex
    _workers: WorkerLocks
    _cancel_looks: CancelLooks

    def locked(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _read_listed(self, job_id: str) -> JobRecord | None:
        raise NotImplementedError

    def job_path(self, job_id: str) -> str:
        raise NotImplementedError

    # -- listing, history and workers ----------------------------------------------------

    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of these types), due or not."""
        with self.locked():
            return self._index.order.queued_count(types)

    def queued_by_type(
        self, now: str, queues: frozenset[str] | None = None
    ) -> dict[str, QueuedCounts]:
        """The Queued jobs per type, due or not at ``now``, from the index alone."""
        with self.locked():
            return self._index.order.queued_by_type(now, queues)

    def live(self, status: JobStatus | None = None) -> list[JobRecord]:
        """Live jobs in serving order: Running first, then Queued (or only ``status``)."""
        with self.locked():
            order = self._index.order
            ids = [] if status is JobStatus.QUEUED else order.running_in_order()
            ids += [] if status is JobStatus.RUNNING else order.queued_ids()
        return [r for r in map(self._read_listed, ids) if r is not None and r.status.is_live]

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status, from the index only (never reads history)."""
        with self.locked():
            return history.counts_by_queue(self._index)

    def counts(self) -> dict[str, int]:
        """Jobs per status, from the index only (never reads history)."""
        with self.locked():
            return history.counts(self._index)

    def all_records(self) -> Iterator[JobRecord]:
        """Every job file (history included): for listing and pruning only."""
        for job_id in job_ids_changed_since(self.jobs_dir, 0):
            record = self._read_listed(job_id)
            if record is not None:
                yield record

    def prune(self, cutoff: str, on_batch: Callable[[int], None] | None = None) -> int:
        """Delete finished jobs that finished before ``cutoff`` (ISO UTC); how many.

        History is read without the queue lock, then deleted in batches of at most
        ``prune_batch`` job files, each under the lock on its own (checked again there):
        claims wait for one batch at most, never for all of history. ``on_batch`` is
        called with each batch's count once the lock is released."""
        total = 0
        held = 0.0
        candidates = history.prunable_ids(self.jobs_dir, self.job_path, cutoff)
        for start in range(0, len(candidates), self.prune_batch):
            if start:
                # The lock is no queue: a claim waiting for it may not get it before this
                # process takes it back. A pause as long as the last hold lets it in, and
                # keeps the prune to half the lock's time.
                time.sleep(held * self.prune_pause)
            batch = candidates[start : start + self.prune_batch]
            began = time.monotonic()
            with self.locked():
                n = history.prune(self._index, batch, cutoff, self._read_listed, self.job_path)
            held = time.monotonic() - began
            total += n
            if n and on_batch is not None:
                on_batch(n)
        return total

    def clear(self) -> int:
        """Delete every job file and the index; refuses while a worker is alive."""
        with self.locked():
            return history.clear(self._index, self.workers_dir, self.live_workers())

    def register_worker(self, worker: str, since: str) -> ProcessLock:
        """Take the worker's liveness lock; held until released or the process dies."""
        return self._workers.register_worker(worker, since)

    def worker_alive(self, worker: str) -> bool:
        """Whether the worker's process still holds its liveness lock."""
        return self._workers.worker_alive(worker)

    def forget_worker(self, worker: str) -> None:
        """Remove a dead worker's lock file (only if its lock is free)."""
        self._workers.forget_worker(worker)

    def live_workers(self) -> list[str]:
        """The workers whose liveness lock is held now."""
        return self._workers.live_workers()

    def watch(
        self, callback: Callable[[], None], *, on_cancel: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Nothing to watch across processes here (workers poll the index, which costs a
        stat, and their running jobs' files for cancels); the queue wakes its own
        process's workers itself. Returns a no-op."""
        del callback, on_cancel
        return _nothing

    def cancel_requests(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` Running with a cancel request: a stat of each job file,
        without any lock; a file is read again only when its stat changed since the last
        look (every write replaces it: a new inode)."""
        return self._cancel_looks.requested(job_ids)

    def watch_finished(self, callback: Callable[[str | None], None]) -> None:
        """None: a folder cannot tell other processes' finished jobs (``JobQueue.wait``
        reads the job's file again with a backoff instead)."""
        del callback
