"""A folder queue's bounded reads (``backends/_history.py``), without reading history
per page.

Finished jobs are one JSON file each, and nothing on disk orders them, so a reading
process keeps its own summary of them in memory (finish time, id, status, type, queue:
about 300 bytes a job), built once from the job files and then kept current from the
queue's journal, the same lines every process sharing the queue follows: each line
names the job it changed, whose file alone is read again. A page then reads only the
files of the jobs it shows.

The summary is checked against the index's finished counts at every read: a change no
line names (a prune, which deletes many files under one line; a journal started anew)
makes it list the folder (names only) and read the files it does not know. Every five
minutes the index is reconciled from queue.json and the job files afresh, as a read-only
``JobQueue`` does at each read, which also catches a change whose journal line the disk
refused.

Reads only: the index is a read-only one (no lock taken, nothing written).
"""

from __future__ import annotations

import heapq
import json
import os
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..._clock import Clock
from ..._errors import StorageError
from ..._job_record import JobRecord, JobStatus
from .._history import HistoryFilter, queue_of
from ._index_format import job_id_of_file
from ._job_files import file_name, job_ids_changed_since, read_job_file, read_listed
from ._names import inside
from ._queue_history import counts as index_counts
from ._queue_history import counts_by_queue
from ._queue_index import QueueIndex
from ._reading import RefusedFile, read_bytes

__all__ = ["FilesHistory"]

_REOPEN_EVERY = 300.0  # seconds between full reconciliations of the index
_SLACK_NS = 2_000_000_000  # file-system timestamps can be coarse: look a bit further back


_FINISHED = frozenset(s.value for s in JobStatus.FINISHED)


class _Done(NamedTuple):
    finished: str
    job_id: str
    status: str
    type: str
    queue: str


class _WatchedIndex(QueueIndex):
    """A read-only index that notes which jobs its journal lines (or a reload) touched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.changed: set[str] = set()
        self.reloaded = False
        super().__init__(*args, **kwargs)

    def _change(self, job_id: str | None, entry: Any, deltas: dict[str, int]) -> None:
        super()._change(job_id, entry, deltas)
        if job_id is not None:
            self.changed.add(job_id)

    def _reset(self) -> None:
        super()._reset()
        self.reloaded = True


class FilesHistory:
    """The bounded reads of the queue in folder ``root``."""

    def __init__(self, root: str, clock: Clock) -> None:
        self.root = root
        self.jobs_dir = os.path.join(root, "jobs")
        self._clock = clock
        self._index = _WatchedIndex(root, self.jobs_dir, clock=clock, read_only=True)
        self._done: dict[str, _Done] = {}
        self._tally: dict[str, int] = {}  # the summary's jobs per status
        self._built = False
        self._opened_at = 0.0
        self._seen_ns = 0  # when the last read began (time.time_ns)
        self._guard = threading.Lock()
        self._jobs_real: str | None = None

    def _path(self, job_id: str) -> str:
        if self._jobs_real is None:
            self._jobs_real = inside(self.root, "jobs")
        return os.path.join(self._jobs_real, file_name(job_id))

    def _read_one(self, job_id: str) -> JobRecord | None:
        return read_job_file(self._path(job_id), job_id, read_only=True, now=self._clock.now)

    def _read(self, job_id: str) -> JobRecord | None:
        return read_listed(self._read_one, job_id)

    def _put(self, job_id: str, done: _Done | None) -> None:
        old = self._done.pop(job_id, None)
        if old is not None:
            self._tally[old.status] -= 1
        if done is not None:
            self._done[job_id] = done
            self._tally[done.status] = self._tally.get(done.status, 0) + 1

    def _summary(self, job_id: str) -> _Done | None:
        """The summary of a finished job's file; None for a live job, a missing file or
        one that is not a job file. Its JSON only, without the checks of a full read:
        the summary only says which files a page reads, and those are read in full (a
        damaged one is reported there)."""
        try:
            data = read_bytes(self._path(job_id))
            doc = json.loads(data) if data is not None else None
        except (StorageError, RefusedFile, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("job_id") != job_id:
            return None
        status, meta = doc.get("status"), doc.get("_jobledger")
        if not isinstance(status, str) or status not in _FINISHED or not isinstance(meta, dict):
            return None
        finished, kind = meta.get("finished"), doc.get("type")
        return _Done(
            finished if isinstance(finished, str) else "",
            job_id,
            status,
            kind if isinstance(kind, str) else "",
            queue_of(meta),
        )

    def _note(self, job_ids: Iterable[str]) -> None:
        """Read these jobs' files again into the summary."""
        live = self._index.order.entries
        for job_id in job_ids:
            self._put(job_id, None if job_id in live else self._summary(job_id))

    def _fresh(self) -> None:
        """Bring the index and the summary up to date (under ``_guard``)."""
        index = self._index
        # A read-only index has no journal to follow until one exists: opened afresh.
        stale = time.monotonic() - self._opened_at > _REOPEN_EVERY
        if not index.opened or index.journal.fd is None or stale:
            index.open(self._read)
            self._opened_at = time.monotonic()
        else:
            index.sync(self._read)
        started = time.time_ns()
        if self._built:
            self._note(index.changed)
            if index.reloaded:
                # Lines this index never read (a journal begun anew, a reconciliation):
                # the files changed since the last read tell which jobs they named.
                self._note(job_ids_changed_since(self.jobs_dir, self._seen_ns - _SLACK_NS))
        self._seen_ns = started
        index.changed.clear()
        index.reloaded = False
        if not self._built or not self._agrees():
            self._reconcile()
            self._built = True

    def _agrees(self) -> bool:
        # The index counts finished jobs per status and queue ("Completed:gpu"); the
        # summary's tally is per status.
        finished = {s: n for s, n in index_counts(self._index).items() if s in _FINISHED}
        tally = self._tally
        return all(tally.get(s, 0) == n for s, n in finished.items()) and all(
            finished.get(s, 0) == n for s, n in tally.items()
        )

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status, from the index (no job read)."""
        with self._guard:
            self._fresh()
            return counts_by_queue(self._index)

    def _reconcile(self) -> None:
        """Drop the jobs whose files are gone, read the ones not known yet."""
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            names = []
        present = set()
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                job_id = job_id_of_file(name[: -len(".json")])
                if job_id is not None:
                    present.add(job_id)
        for gone in [i for i in self._done if i not in present]:
            self._put(gone, None)
        live = self._index.order.entries
        self._note(i for i in present if i not in self._done and i not in live)

    # -- the reads ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Jobs per status, from the index."""
        with self._guard:
            self._fresh()
            return index_counts(self._index)

    def live_page(self, status: JobStatus, limit: int, offset: int) -> list[JobRecord]:
        """The live jobs of ``status`` in serving order: only their files are read."""
        with self._guard:
            self._fresh()
            order = self._index.order
            ids = order.running_in_order() if status is JobStatus.RUNNING else order.queued_ids()
            wanted = ids[offset : offset + limit]
        out = []
        for job_id in wanted:
            record = self._read(job_id)
            if record is not None and record.status is status:
                out.append(record)
        return out

    def history(
        self, where: HistoryFilter, limit: int, before: tuple[str, str] | None
    ) -> list[JobRecord]:
        """Finished jobs matching ``where``, latest first: only the shown files are read."""
        with self._guard:
            self._fresh()
            found = heapq.nlargest(
                limit,
                (d for d in self._done.values() if _matches(d, where, before)),
                key=lambda d: (d.finished, d.job_id),
            )
        out = []
        for done in found:
            record = self._read(done.job_id)
            if record is not None and not record.status.is_live and record.finished:
                out.append(record)
        return out

    def finished_per_minute(self, since: str) -> dict[str, dict[str, int]]:
        """Finishes at or after ``since`` per minute and status, from the summary."""
        out: dict[str, dict[str, int]] = {}
        with self._guard:
            self._fresh()
            for done in self._done.values():
                if done.finished >= since:
                    minute = out.setdefault(done.finished[:16], {})
                    minute[done.status] = minute.get(done.status, 0) + 1
        return out

    def close(self) -> None:
        """Close the index's journal."""
        with self._guard:
            self._index.close()


def _matches(d: _Done, where: HistoryFilter, before: tuple[str, str] | None) -> bool:
    if not d.finished:
        return False
    if where.statuses is not None and d.status not in where.statuses:
        return False
    if where.type is not None and d.type != where.type:
        return False
    if where.queue is not None and d.queue != where.queue:
        return False
    if where.since is not None and d.finished < where.since:
        return False
    if where.until is not None and d.finished >= where.until:
        return False
    return before is None or (d.finished, d.job_id) < before
