"""Listing a job queue's files and pruning its history (a mixin of the files backend).

Everything here reads the index (``_queue_index.py``) under the queue lock, or walks the
job files for history: listing live jobs in serving order, counting by status, every job
for export and listing, deleting finished jobs (``prune``) and every job (``clear``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ..._errors import JobLedgerError, StorageError
from ..._faults import point
from ..._job_record import JobRecord, JobStatus
from .._contract import QueuedCounts
from ._atomic import remove
from ._queue_index import FINISHED, QueueIndex

__all__ = ["QueueHistory"]


class QueueHistory(QueueIndex):
    """Listing and history: needs the backend's lock, paths and live workers (below)."""

    root: str
    jobs_dir: str
    workers_dir: str

    def locked(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def job_path(self, job_id: str) -> str:
        raise NotImplementedError

    def live_workers(self) -> list[str]:
        raise NotImplementedError

    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of these types), due or not."""
        with self.locked():
            if types is None:
                return len(self._queued)
            return sum(1 for k in self._queued if self._entries[k[-1]].type in types)

    def queued_by_type(self, now: str) -> dict[str, QueuedCounts]:
        """The Queued jobs per type, due or not at ``now``, from the index alone."""
        tally: dict[str, list[Any]] = {}
        with self.locked():
            for key in self._queued:
                entry = self._entries[key[-1]]
                t = tally.setdefault(entry.type, [0, 0, None])
                if entry.run_after is None or entry.run_after <= now:
                    t[0] += 1
                else:
                    t[1] += 1
                    if t[2] is None or entry.run_after < t[2]:
                        t[2] = entry.run_after
        return {k: QueuedCounts(*v) for k, v in tally.items()}

    def _finished_before(self, cutoff: str) -> Iterator[JobRecord]:
        """Finished jobs whose ``finished`` time is before ``cutoff`` (ISO UTC).

        Reads every unlisted job file: the ``finished`` time comes from the queue's clock,
        which file mtimes (the disk's clock) cannot stand in for: an injected clock, a
        network file system's clock or a restored file would make a job never pruned."""
        for job_id in list(self._job_ids_changed_since(0)):
            if job_id in self._entries:
                continue
            record = self._read_listed(job_id)
            if (
                record is not None
                and not record.status.is_live
                and (record.finished or "") < cutoff
            ):
                yield record

    def live(self, status: JobStatus | None = None) -> list[JobRecord]:
        """Live jobs in serving order: Running first, then Queued (or only ``status``)."""
        with self.locked():
            if status is JobStatus.RUNNING:
                ids = self._running_in_order()
            elif status is JobStatus.QUEUED:
                ids = [k[-1] for k in self._queued]
            else:
                ids = self._running_in_order() + [k[-1] for k in self._queued]
        return [r for r in map(self._read_listed, ids) if r is not None and r.status.is_live]

    def counts(self) -> dict[str, int]:
        """Jobs per status, from the index only (never reads history)."""
        with self.locked():
            out = {
                JobStatus.QUEUED.value: len(self._queued),
                JobStatus.RUNNING.value: len(self._running),
            }
            out.update(self._finished)
            return out

    def all_records(self) -> Iterator[JobRecord]:
        """Every job file (history included): for listing and pruning only."""
        for job_id in self._job_ids_changed_since(0):
            record = self._read_listed(job_id)
            if record is not None:
                yield record

    def prune(self, cutoff: str) -> int:
        """Delete finished jobs that finished before ``cutoff`` (ISO UTC); how many."""
        n = 0
        with self.locked():
            deltas: dict[str, int] = {}
            doomed = sorted(self._finished_before(cutoff), key=lambda r: r.job_id)
            if not doomed:
                return 0
            self._mark_pruning()
            refused: StorageError | None = None
            for record in doomed:
                path = self.job_path(record.job_id)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass  # gone already: still counted until now
                except OSError as exc:
                    # Stop here, kept and counted as it is; what is deleted is counted out.
                    refused = StorageError("delete", path, exc)
                    break
                point("queue.pruned_file")
                value = record.status.value
                self._finished[value] = max(0, self._finished[value] - 1)
                deltas[value] = deltas.get(value, 0) - 1
                n += 1
            self._log_quietly([], deltas)  # closes the prune begun by the mark
            if refused is not None:
                raise refused
        return n

    def clear(self) -> int:
        """Delete every job file and the index; refuses while a worker is alive."""
        with self.locked():
            return self._clear()

    def _clear(self) -> int:
        alive = self.live_workers()
        if alive:
            raise JobLedgerError(
                f"refusing to clear the queue in {self.root}: worker(s) {', '.join(alive)} "
                "are alive. Stop them first (the folder may be cleared only when no worker "
                "runs)."
            )
        n = 0
        for folder in (self.jobs_dir, self.workers_dir):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(folder):
                    remove(os.path.join(folder, name))
                    n += folder == self.jobs_dir
        remove(self.index_path)
        self._entries.clear()
        self._queued.clear()
        self._running.clear()
        self._finished = {s.value: 0 for s in FINISHED}
        self._revision = 0
        self._written.clear()
        self._rotate_journal()  # other open queues notice, and reload an empty index
        self._snapshot_revision = 0
        self._opened = False
        return n
