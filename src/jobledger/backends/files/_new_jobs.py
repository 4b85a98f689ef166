"""A files queue's new jobs: ``put`` (enqueue, unique keys included) and ``import_records``.

A base class of ``FilesJobBackend`` (``jobs.py``), which holds the parts these methods
use: the queue lock, the index and its key maps, the job file writer, and the reads of
job files under the lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from ..._errors import StorageError
from ..._job_record import JobRecord
from ._atomic_write import Prepared
from ._job_file_writer import JobFileWriter
from ._job_files import discard
from ._queue_index import QueueIndex
from ._syncs import fsync_dir

__all__ = ["NewJobs"]


class NewJobs:
    """``put`` and ``import_records`` of a files queue; see the module docstring."""

    _index: QueueIndex
    _writer: JobFileWriter
    _fsync: bool
    jobs_dir: str
    job_path: Callable[[str], str]

    def locked(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _read(self, job_id: str) -> JobRecord | None:
        raise NotImplementedError

    def _read_listed(self, job_id: str) -> JobRecord | None:
        raise NotImplementedError

    def _read_locked(self, job_id: str, *, listed: bool = False) -> JobRecord | None:
        raise NotImplementedError

    def _catch_up(self, record: JobRecord) -> None:
        raise NotImplementedError

    def _clock_us(self) -> int:
        raise NotImplementedError

    def put(
        self,
        records: Sequence[JobRecord],
        fresh: frozenset[str] = frozenset(),
        *,
        unique_since: str | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """Store new jobs (fsynced under fsync durability). Returns (stored record, whether
        it is new) for each: an existing id gives its stored record and writes nothing
        (idempotent enqueue), and so does a ``unique_key`` that a live job holds (or,
        with ``unique_since``, a job that finished at or after it): that job is returned.
        Of a batch's jobs with one key, the first is stored. Looked up under the queue
        lock in the index's key maps, never by reading every job file (see ``QueueIndex``
        for the one time a process does)."""
        records = list(records)  # built (and checked) before the lock and any write
        with self.locked():
            return self._put(records, fresh, unique_since)

    def _put(
        self,
        records: list[JobRecord],
        fresh: frozenset[str] = frozenset(),
        unique_since: str | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        out = []
        new: dict[str, JobRecord] = {}
        new_keys: dict[str, JobRecord] = {}
        for record in records:
            job_id = record.job_id
            # Only a live job takes its key (put enqueues Queued jobs; a finished one, as
            # a test stores it, takes none).
            key = record.unique_key if record.status.is_live else None
            existing = new.get(job_id) or (None if job_id in fresh else self._read(job_id))
            if existing is None and key is not None:
                existing = new_keys.get(key) or self._key_holder(key, unique_since)
            if existing is not None:
                out.append((existing, False))
                continue
            self._index.last_seq = max(self._index.last_seq + 1, self._clock_us())
            record = record.with_seq(self._index.last_seq)
            new[record.job_id] = record
            if key is not None:
                new_keys[key] = record
            out.append((record, True))
        if not new:
            return out
        # The index lists the new ids before their files exist (see _list_first).
        for record in new.values():
            self._index.update(record)
        try:
            self._index.log(list(new))
        except BaseException:
            for job_id in new:  # refused: nothing is stored, nor listed
                self._index.remove(job_id)
            raise
        written = 0
        prepared: list[Prepared] = []
        try:
            # Each file synced before its rename (all at once), their folder once after.
            prepared = self._writer.presync(list(new.values()), fsync=True, replacing=False)
            for i, record in enumerate(new.values()):
                ready = prepared[i] if prepared else None
                self._writer.write(
                    record, fsync=True, replacing=False, sync_folder=False, prepared=ready
                )
                written += 1
        except BaseException:
            discard(prepared)
            unwritten = list(new)[written:]
            for job_id in unwritten:
                self._index.remove(job_id)
            self._index.log_quietly(unwritten)
            if written and self._fsync:
                with contextlib.suppress(OSError):
                    fsync_dir(self.jobs_dir)  # the ones written stay, as durable as may be
            raise
        if self._fsync:
            try:
                fsync_dir(self.jobs_dir)
            except OSError as exc:
                # Every new file is in place and listed: the batch stands, not durable yet.
                last = self.job_path(list(new)[-1])
                raise StorageError("sync the folder of", last, exc, replaced=True) from exc
        return out

    def _key_holder(self, key: str, unique_since: str | None) -> JobRecord | None:
        """Under the lock: the live job holding ``key``, else (with ``unique_since``) its
        latest job if that finished at or after ``unique_since``; else None. Reads the
        one job file the index names (the file wins: one that says otherwise is caught up
        with), never the others."""
        live = self._index.order.by_key.get(key)
        if live is not None:
            record = self._read_locked(live, listed=True)
            if record is not None and not record.status.is_live:
                self._catch_up(record)
            elif record is not None and record.unique_key == key:
                return record
        if unique_since is None:
            return None
        if not self._index.keys_complete:
            self._index.complete_keys(self._read_listed)
        latest = self._index.keys.get(key)
        if latest is None:
            return None
        record = self._read_locked(latest[1])
        if record is None or record.unique_key != key:
            return None
        if record.status.is_live:
            return record  # listed nowhere yet: a file the index is behind on
        return record if (record.finished or "") >= unique_since else None

    def import_records(self, records: list[JobRecord]) -> list[str]:
        """Store ``records`` exactly as given (``jobledger export``): each new job's file is
        written (fsynced under fsync durability), then the index is rebuilt from the job
        files, which moves ``seq`` past every imported one and makes other processes
        reload it. The ids already stored are left as they are and returned."""
        kept: list[str] = []
        new: dict[str, JobRecord] = {}
        with self.locked():
            keys = set(self._index.order.by_key)
            for record in records:
                key = record.unique_key
                # A live job whose unique key a live job holds is left out too, as the
                # PostgreSQL backend's unique index leaves it out.
                taken = key is not None and record.status.is_live and key in keys
                if taken or record.job_id in new or self._read(record.job_id) is not None:
                    kept.append(record.job_id)
                else:
                    new[record.job_id] = record
                    if key is not None and record.status.is_live:
                        keys.add(key)
            if not new:
                return kept
            for record in new.values():
                self._writer.write(record, fsync=True, replacing=False, sync_folder=False)
            if self._fsync:
                try:
                    fsync_dir(self.jobs_dir)
                except OSError as exc:
                    last = self.job_path(list(new)[-1])
                    raise StorageError("sync the folder of", last, exc, replaced=True) from exc
            self._index.rebuild(self._read_listed)
        return kept
