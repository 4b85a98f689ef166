"""Writing one job file, or a batch of them, the way the queue's durability asks.

A :class:`JobFileWriter` belongs to one ``FilesJobBackend``: it chooses each save's fsyncs
(``plan_sync``, asking the file system once whether it orders a rename after the data),
hands the syncs left after a rename to the queue lock (run once it is released), and keeps
the index's cache of what this process wrote in step with the files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..._errors import StorageError
from ..._job_record import JobRecord
from ._atomic_write import Prepared, write_atomic
from ._fs_probe import orders_rename_over
from ._job_files import holds, presync, reraise
from ._queue_index import QueueIndex
from ._queue_lock import QueueLock
from ._sync_plan import SyncPlan, plan_sync

__all__ = ["JobFileWriter"]


class JobFileWriter:
    """Saves job files under ``root`` for one backend (``fsync``: its durability)."""

    def __init__(
        self,
        root: str,
        *,
        fsync: bool,
        index: QueueIndex,
        lock: QueueLock,
        job_path: Callable[[str], str],
    ) -> None:
        self.root = root
        self._fsync = fsync
        self._index = index
        self._lock = lock
        self._job_path = job_path
        #: Whether renames are ordered after the data here; None until first asked
        #: (constructing a queue reads nothing). Tests set it to try both orders.
        self.rename_ordered: bool | None = None

    def write(
        self,
        record: JobRecord,
        fsync: bool,
        *,
        replacing: bool,
        sync_folder: bool = True,
        prepared: Prepared | None = None,
    ) -> None:
        """Write a job file; ``replacing`` says it exists (a transition, not an enqueue);
        ``prepared``, its bytes already in a temp file, synced (see :meth:`presync`)."""
        path = self._job_path(record.job_id)
        data = record.dumps() if prepared is None else prepared.data
        try:
            st = write_atomic(
                path,
                data,
                self.plan(fsync, replacing, caller_syncs_folder=not sync_folder),
                sync_later=self._lock.syncs,
                prepared=prepared,
            )
        except StorageError as exc:
            if self._lock.syncs is None or not holds(path, data):
                raise
            # Refused after the replace, while making it durable: the change is in place.
            # The operation goes on as written (the index follows the file), and the error
            # is raised once the lock is released, as an ordered save's late sync is.
            self._index.written.pop(record.job_id, None)
            self._lock.syncs.append(functools.partial(reraise, exc))
            return
        if record.status.is_live:
            self._index.written[record.job_id] = ((st.st_ino, st.st_size, st.st_mtime_ns), record)
        else:
            self._index.written.pop(record.job_id, None)

    def plan(self, fsync: bool, replacing: bool, *, caller_syncs_folder: bool = False) -> SyncPlan:
        """The fsyncs of one job file's save: ``fsync`` False for a claim, which may be
        lost in a power cut but never leaves an empty file (see ``plan_sync``)."""
        return plan_sync(
            fsync=self._fsync,
            durable=fsync,
            replacing=replacing,
            rename_ordered=self.renames_ordered,
            caller_syncs_folder=caller_syncs_folder,
        )

    def renames_ordered(self) -> bool:
        """Whether this file system orders a rename after the data (asked once, on the
        first write that needs to know: constructing a queue reads nothing)."""
        if self.rename_ordered is None:
            self.rename_ordered = orders_rename_over(self.root)
        return self.rename_ordered

    def presync(self, records: list[JobRecord], *, fsync: bool, replacing: bool) -> list[Prepared]:
        """For a batch of writes that each sync before their rename: write every temp file
        first and sync them all at once (``sync_prepared``), so that the disk shares its
        flushes among them; [] when there is nothing to share (one write, or writes that
        sync after their rename or not at all). The caller passes each to :meth:`write` and
        discards the ones left unused."""
        if len(records) < 2 or not self.plan(fsync, replacing).syncs_before_rename:
            return []  # renamed first and synced after the lock, or not synced at all
        return presync([(self._job_path(r.job_id), r.dumps()) for r in records])
