"""The job queue as files: ``<dir>/jobs/<job_id>.json`` and ``<dir>/queue.json``.

Invariants:

- A job file is the truth about its job; ``queue.json`` (with ``.queue.journal``) is an
  index derived from the job files, and the job files win any disagreement: see
  ``_queue_index.py``.
- Every change happens under ``<dir>/.queue.lock`` (an OS lock, plus a thread lock inside
  the process): one winner per claim across threads and processes.
- A listed job's file is written before the index; a job becoming live (enqueued, or
  retried from history) is listed in the index before its file is written, so a crash
  never leaves a live job file that no index lists. A crash between the two writes leaves
  the index behind the files; opening a queue reconciles them: it reads every listed job's
  file, and the files changed since ``queue.json`` was written (found by their mtime or
  ctime, without reading the rest of history).
- ``queue.json`` is never fsynced: it can always be rebuilt. A missing, torn or corrupt one
  (any key of the wrong type or range) is rebuilt from every job file, with a warning.
- A job file that does not parse, or any of whose fields has the wrong type or range (see
  ``JobRecord.from_json``), is set aside as ``<name>.corrupt-<stamp>`` with a warning, and
  the rest of the queue goes on. A Running job whose ``worker`` no lock file can have is
  recovered as a dead worker's job.
- Workers hold OS locks on ``<dir>/workers/<worker>.lock``; a held lock means a live worker.
- A ``read_only`` backend (the queue's reading methods) takes no lock and writes nothing:
  it computes the index in memory from queue.json, the journal and the job files, reports
  a corrupt job file or queue.json without moving it, and creates no file or folder.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator

from ..._clock import Clock, SystemClock
from ..._enqueue import key_taken_conflict
from ..._errors import JobLedgerError, JobNotFound, StorageError
from ..._job_record import JobRecord, JobStatus
from ..._limits import Gate, Limits, RateLimit, rate_key_of
from ..._schedules import StoredSchedule
from .._contract import Recovery
from .._swap import each_once, swapping
from ._atomic_write import Prepared
from ._cancel_looks import CancelLooks
from ._job_file_writer import JobFileWriter
from ._job_files import (
    discard,
    file_name,
    read_job_file,
    read_listed,
)
from ._job_reads import JobReads
from ._limits_file import LimitsFile, RateStarts, Starts
from ._names import inside
from ._new_jobs import NewJobs
from ._queue_index import QueueIndex, finished_deltas, finished_key
from ._queue_lock import QueueLock
from ._schedules_file import SchedulesFile
from ._workers import WorkerLocks, usable_worker

__all__ = ["FilesJobBackend"]

log = logging.getLogger("jobledger")

#: The most job files one batch of ``prune`` reads again and deletes under the queue lock:
#: about 16 ms for 500 on a 2-core machine's ext4, where a claim in another process waited
#: up to 26-38 ms during a prune of 20,000 files (batches back to back), against 0.8 s
#: when one hold of the lock read and deleted them all.
PRUNE_BATCH = 500


class FilesJobBackend(JobReads, NewJobs):
    """Jobs in JSON files under ``root``; see the module docstring.

    It owns, by composition: the queue lock (``QueueLock``), the queue's index
    (``QueueIndex``: the live jobs in serving order, the finished counts, the journal and
    queue.json) and its workers' liveness locks (``WorkerLocks``). Job files are read and
    listed by ``_job_files``' functions; counting, pruning and clearing are
    ``_queue_history``'s."""

    def __init__(self, root: str, *, fsync: bool, clock: Clock, read_only: bool = False) -> None:
        self._read_only = read_only
        self.root = os.path.abspath(root)
        self.location = self.root
        self.jobs_dir = os.path.join(self.root, "jobs")
        self.workers_dir = os.path.join(self.root, "workers")
        self._index = QueueIndex(self.root, self.jobs_dir, clock=clock, read_only=read_only)
        self._workers = WorkerLocks(self.workers_dir)
        self._fsync = fsync
        self._clock = clock
        self._lock = QueueLock(self.root, self.jobs_dir, after_fork=self._index.after_fork)
        self._writer = JobFileWriter(
            self.root, fsync=fsync, index=self._index, lock=self._lock, job_path=self.job_path
        )
        self._thread_lock = self._lock.thread
        self._jobs_real: str | None = None
        #: The most job files one batch of :meth:`prune` deletes under the queue lock.
        self.prune_batch = PRUNE_BATCH
        #: How long :meth:`prune` pauses between batches, as a multiple of the last hold.
        self.prune_pause = 1.0
        self._cancel_looks = CancelLooks(self.job_path, self._read)
        self._schedules = SchedulesFile(self.root, fsync=fsync, clock=clock, read_only=read_only)
        self._limits = LimitsFile(self.root, fsync=fsync, clock=clock, read_only=read_only)
        self._rate_starts = RateStarts(self.root, fsync=fsync, clock=clock, read_only=read_only)
        _OPEN_BACKENDS.add(self)

    @property
    def _rename_ordered(self) -> bool | None:
        """Whether renames are ordered after the data here (see ``JobFileWriter``)."""
        return self._writer.rename_ordered

    @_rename_ordered.setter
    def _rename_ordered(self, ordered: bool | None) -> None:
        self._writer.rename_ordered = ordered

    # -- paths ----------------------------------------------------------------------------

    def job_path(self, job_id: str) -> str:
        """The file of ``job_id``: ``encode`` makes any id one safe name component, so the
        path stays inside ``jobs/`` (checked with realpath once, for the folder)."""
        if self._jobs_real is None:
            self._jobs_real = inside(self.root, "jobs")
        return os.path.join(self._jobs_real, file_name(job_id))

    # -- the queue lock -------------------------------------------------------------------

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the queue lock (threads and processes) with an index in sync with disk.

        Durable replaces made inside are synced after the lock is released, before this
        returns (see ``QueueLock``)."""
        if self._read_only:
            return self._fresh_view()
        return self._lock.held(self._lock_taken)  # no wrapper: this is every operation

    @contextlib.contextmanager
    def _fresh_view(self) -> Iterator[None]:
        # No lock, no file: the index computed in memory afresh at each read, from
        # queue.json, the journal and the job files (which win). Not incrementally
        # from the journal: a writer whose journal line the disk refused holds the
        # change in its job file only, which a fresh reconciliation reads.
        with self._thread_lock:
            self._index.open(self._read_listed)
            yield

    def _lock_taken(self) -> None:
        """The lock just taken: the index made to agree with the disk."""
        if not self._index.opened:
            self._index.open(self._read_listed)  # which opens the journal
        else:
            self._index.sync(self._read_listed)  # other processes' changes since

    def close(self) -> None:
        """Write the queue.json snapshot and release the file descriptors."""
        with self._thread_lock:
            try:
                if self._lock.mine():
                    self.checkpoint()
            except StorageError as exc:
                # Nothing is lost: the journal holds what queue.json lacks, and the next
                # opening catches up. The files are released all the same.
                log.warning("%s queue.json was not brought up to date on closing.", exc)
            finally:
                self._lock.close()
                self._index.close()

    def checkpoint(self) -> None:
        """Bring queue.json up to date now: open the queue if it is not yet (which
        reconciles it with the job files), then write out what is only in the journal."""
        with self._thread_lock:
            if not self._index.opened or self._index.behind():
                with self.locked():  # which also reads the lines other processes wrote
                    if self._index.behind():
                        self._index.save()

    # -- reading job files ----------------------------------------------------------------

    def _read(self, job_id: str) -> JobRecord | None:
        """The job's record from its file; None if it has none (or a damaged one, set
        aside: see ``read_job_file``)."""
        return read_job_file(
            self.job_path(job_id), job_id, read_only=self._read_only, now=self._clock.now
        )

    def _read_listed(self, job_id: str) -> JobRecord | None:
        """``_read`` for the paths that go over many jobs: see ``read_listed``."""
        return read_listed(self._read, job_id)

    # -- the primitives -------------------------------------------------------------------

    def _clock_us(self) -> int:
        if type(self._clock) is SystemClock:  # the same value, without a datetime
            return time.time_ns() // 1000
        return int(self._clock.now().timestamp() * 1_000_000)

    # -- schedules ------------------------------------------------------------------------

    def schedules(self) -> list[StoredSchedule]:
        """The stored schedules, by name: schedules.json, read again only when its stat
        changed (no lock: the file is replaced whole)."""
        return [s for _, s in sorted(self._schedules.read().items())]

    def change_schedule(
        self,
        name: str,
        change: Callable[[StoredSchedule | None], tuple[StoredSchedule | None, list[JobRecord]]],
    ) -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
        """Under the queue lock: ``change`` the schedule, put its jobs, then write
        schedules.json. A crash between the two leaves the jobs stored and ``last``
        behind: the next firing computes the same occurrences, whose ids exist."""
        with self.locked():
            current = self._schedules.read(fresh=True)
            old = current.get(name)
            new, jobs = change(old)
            stored = self._put(jobs) if jobs else []
            if new is not old:
                if new is None:
                    del current[name]
                else:
                    current[name] = new
                self._schedules.write(current, self._lock.syncs)
        return new, stored

    def get(self, job_id: str) -> JobRecord | None:
        """The stored job (read from its file, no lock)."""
        return self._read(job_id)

    def next_seq(self) -> int:
        """A serving sequence number above every one seen."""
        with self.locked():
            self._index.last_seq = max(self._index.last_seq + 1, self._clock_us())
            return self._index.last_seq

    def claim(
        self,
        worker: str,
        now: str,
        types: frozenset[str] | None,
        limit: int = 1,
        *,
        recover: Recovery | None = None,
        queues: frozenset[str] | None = None,
    ) -> list[JobRecord]:
        """Make the first ``limit`` due Queued jobs (serving order; of ``types``, in
        ``queues``) Running under ``worker``, attempts + 1, and return them; empty if none
        is due. One winner per job across processes. ``recover`` is not used: here a dead
        worker is found by :meth:`recover`, which the queue calls every ``recover_every``
        seconds.

        The limits (limits.json, looked at by a stat) are checked under the queue lock:
        a limited queue's Running jobs are counted by the index, a rate-limited type's
        recent starts read from rate_starts.json, and ``_limits.Gate`` admits each job.

        Not fsynced: if a power cut loses this write, the job reads as Queued again and
        runs, which it would have done anyway since its worker died with the power."""
        out: list[JobRecord] = []
        with self.locked():
            gate = self._gate(now, types, queues)
            picked: list[tuple[JobRecord, JobRecord]] = []
            seen: set[str] = set()
            refused: StorageError | None = None
            due = self._index.order.due(now, types, queues)
            while len(picked) < limit:
                entry = next((e for e in due if e.key[-1] not in seen), None)
                if entry is None:
                    break
                job_id = entry.key[-1]
                seen.add(job_id)
                if gate is not None and gate.queue_full(entry.queue):
                    continue
                try:
                    record = self._read_as_listed(job_id, JobStatus.QUEUED)
                except StorageError as exc:
                    refused = exc
                    break
                if record is None:
                    # Reading it changed the serving order (a file that says it is no
                    # longer Queued is caught up or dropped): an iterator kept across
                    # that would skip the job after it. From the head again.
                    due = self._index.order.due(now, types, queues)
                    continue
                if gate is not None and not gate.admit(record):
                    continue  # over a limit: it waits, its attempt not counted
                running = record.evolve(
                    status=JobStatus.RUNNING,
                    attempts=record.attempts + 1,
                    worker=worker,
                    started=now,
                    run_after=None,
                )
                picked.append((record, running))
            prepared: list[Prepared] = []
            try:
                # Where a claim syncs its data (JobFileWriter.plan), its batch's syncs run at once.
                with contextlib.suppress(StorageError):  # then each write tries on its own
                    prepared = self._writer.presync(
                        [r for _, r in picked], fsync=False, replacing=True
                    )
                for i, (record, running) in enumerate(picked):
                    ready = prepared[i] if prepared else None
                    try:
                        self._save(record, running, fsync=False, prepared=ready)
                    except StorageError as exc:
                        refused = exc
                        break
                    out.append(running)
            finally:
                discard(prepared)
            if gate is not None and gate.rates:
                self._note_starts(gate, out)
            if refused is not None:
                if not out:
                    raise refused
                # The jobs claimed so far are Running under this worker: hand them out
                # (kept back, they would wait for this process to die).
                log.warning("Claimed %d job(s), and no more: %s", len(out), refused)
        return out

    def _gate(
        self, now: str, types: frozenset[str] | None, queues: frozenset[str] | None
    ) -> Gate | None:
        """What admits a claim's jobs under the stored limits; None when none applies
        (the claim then pays a stat of limits.json for them)."""
        limits = self._limits.read()
        if not limits.queues and not limits.rates:
            return None
        queue_limits, rates = limits.applying(queues, types)
        if not queue_limits and not rates:
            return None
        running = self._index.order.running_in
        starts = self._rate_starts.read() if rates else {}
        return Gate(queue_limits, running, rates, starts, now)

    def _note_starts(self, gate: Gate, claimed: list[JobRecord]) -> None:
        """Store the starts of the rate-limited jobs ``claimed`` (written: a job the disk
        refused is not started), the starts older than their window dropped."""
        starts = self._rate_starts.read()
        kept: Starts = {}
        for (job_type, key), times in starts.items():
            rate = gate.rates.get(job_type)
            if rate is None:
                kept[(job_type, key)] = times
                continue
            cutoff = gate.cutoff(job_type)
            kept[(job_type, key)] = [t for t in times if t > cutoff]
        admitted = [r for r in claimed if r.type in gate.rates]
        for record in admitted:
            scope = (record.type, rate_key_of(record, gate.rates[record.type]))
            kept.setdefault(scope, []).append(gate.now)
        if admitted or kept != starts:
            self._rate_starts.write(kept, self._lock.syncs)

    # -- limits ---------------------------------------------------------------------------

    def limits(self) -> Limits:
        """The stored limits: limits.json (a stat, read again only when it changed)."""
        return self._limits.read()

    def set_limit(self, queue: str, limit: int | None) -> None:
        """Store ``queue``'s limit in limits.json, under the queue lock."""
        with self.locked():
            current = self._limits.read()
            queues = {q: n for q, n in current.queues.items() if q != queue}
            if limit is not None:
                queues[queue] = limit
            self._limits.write(Limits(queues, current.rates), self._lock.syncs)

    def set_rate_limit(self, job_type: str, rate: RateLimit | None) -> None:
        """Store ``job_type``'s rate limit in limits.json, under the queue lock."""
        with self.locked():
            current = self._limits.read()
            rates = {t: r for t, r in current.rates.items() if t != job_type}
            if rate is not None:
                rates[job_type] = rate
            self._limits.write(Limits(current.queues, rates), self._lock.syncs)

    def swap(self, pairs: list[tuple[JobRecord, JobRecord]]) -> list[JobRecord | None]:
        """Write each pair's changes where the job still holds the pair's claim, under one
        hold of the lock (as :meth:`transition_many`); None where it does not."""
        each_once(pairs)
        outcomes = self.transition_many([(c.job_id, swapping(c, new)) for c, new in pairs])
        return [r if isinstance(r, JobRecord) else None for r in outcomes]

    def swap_and_claim(
        self,
        pairs: list[tuple[JobRecord, JobRecord]],
        worker: str,
        now: str,
        types: frozenset[str] | None,
        limit: int = 1,
        *,
        recover: Recovery | None = None,
        queues: frozenset[str] | None = None,
    ) -> tuple[list[JobRecord | None], list[JobRecord]]:
        """:meth:`swap`, then :meth:`claim`, under one hold of the lock; the swap's
        durable writes are synced once it is released, with the claim's. A claim refused by
        the disk after the swap wrote is logged and claims nothing: the swap stands, and
        the next claim meets the trouble again (and raises it)."""
        with self.locked():
            outcomes = self.swap(pairs)
            try:
                claimed = self.claim(worker, now, types, limit, recover=recover, queues=queues)
            except StorageError as exc:
                if not any(r is not None for r in outcomes):
                    raise
                log.warning("Recorded %d job(s), and claimed none: %s", len(pairs), exc)
                claimed = []
        return outcomes, claimed

    def transition(
        self, job_id: str, change: Callable[[JobRecord], JobRecord], *, fsync: bool = True
    ) -> JobRecord:
        """Apply ``change`` to the stored job under the lock and store the result.
        ``change`` may raise (JobConflict) to refuse; nothing is written then."""
        with self.locked():
            return self._transition(job_id, change, fsync)

    def transition_many(
        self,
        changes: list[tuple[str, Callable[[JobRecord], JobRecord]]],
        *,
        fsync: bool = True,
    ) -> list[JobRecord | JobLedgerError]:
        """:meth:`transition` for each, under one hold of the lock; what is left of the
        durable writes' syncs runs once the lock is released, their folder synced once."""
        out: list[JobRecord | JobLedgerError] = []
        with self.locked():
            if len({job_id for job_id, _ in changes}) < len(changes):
                # A job twice: its second change must see the first one's result.
                for job_id, change in changes:
                    try:
                        out.append(self._transition(job_id, change, fsync))
                    except JobLedgerError as exc:
                        if isinstance(exc, StorageError):
                            raise
                        out.append(exc)
                return out
            planned: list[tuple[JobRecord, JobRecord]] = []
            for job_id, change in changes:
                try:
                    record, new = self._changed(job_id, change)
                except JobLedgerError as exc:
                    if isinstance(exc, StorageError):
                        raise
                    out.append(exc)
                    continue
                out.append(new)
                if new is not record:
                    planned.append((record, new))
            prepared = self._writer.presync(
                [new for _, new in planned], fsync=fsync, replacing=True
            )
            try:
                for i, (record, new) in enumerate(planned):
                    self._save(record, new, fsync=fsync, prepared=prepared[i] if prepared else None)
            finally:
                discard(prepared)
        return out

    def _transition(
        self, job_id: str, change: Callable[[JobRecord], JobRecord], fsync: bool
    ) -> JobRecord:
        record, new = self._changed(job_id, change)
        if new is not record:
            self._save(record, new, fsync=fsync)
        return new

    def _changed(
        self, job_id: str, change: Callable[[JobRecord], JobRecord]
    ) -> tuple[JobRecord, JobRecord]:
        """(stored record, ``change`` of it), under the lock; nothing written yet. A change
        that makes a finished job live again (a retry) while another live job holds its
        unique key is refused (JobConflict)."""
        record = self._read_locked(job_id)
        if record is None:
            raise JobNotFound(job_id, self.root)
        new = change(record)
        key = new.unique_key
        if key is not None and new.status.is_live and not record.status.is_live:
            holder = self._key_holder(key, None)
            if holder is not None and holder.job_id != job_id:
                raise key_taken_conflict([job_id], holder, self.root)
        return record, new

    def recover(
        self, keep: Callable[[str | None], bool], decide: Callable[[JobRecord], JobRecord]
    ) -> list[JobRecord]:
        """For each Running job whose worker is dead (and not kept by ``keep``), store
        ``decide(job)``. Dead workers' lock files are removed afterwards."""
        out = []
        with self.locked():
            alive: dict[str, bool] = {}
            for job_id in list(self._index.order.running):
                worker = self._index.order.entries[job_id].worker
                if keep(worker):
                    continue
                # A worker id no lock file can have (damaged, edited by hand) is no live
                # worker's: its job is recovered as any dead worker's.
                if worker is not None and usable_worker(worker):
                    if worker not in alive:
                        alive[worker] = self.worker_alive(worker)
                    if alive[worker]:
                        continue
                record = self._read_as_listed(job_id, JobStatus.RUNNING)
                if record is None:
                    continue
                new = decide(record)
                self._save(record, new, fsync=True)
                out.append(new)
        for worker, is_alive in alive.items():
            if not is_alive:
                self.forget_worker(worker)
        return out

    def _save(
        self, old: JobRecord, new: JobRecord, *, fsync: bool, prepared: Prepared | None = None
    ) -> None:
        if new.status.is_live and new.job_id not in self._index.order.entries:
            self._list_first(old, new, fsync=fsync, prepared=prepared)
            return
        self._writer.write(new, fsync=fsync, replacing=True, prepared=prepared)
        deltas = finished_deltas(old, new)
        self._index.update(new, deltas)
        self._index.log_quietly([new.job_id], deltas)

    def _catch_up(self, record: JobRecord) -> None:
        """The index lists this job but its file says otherwise (a process died between
        the two writes, or between the index and the file of _list_first): the file wins.
        A listed job is not in the finished counts, so a finished one is counted now."""
        deltas = {} if record.status.is_live else {finished_key(record): 1}
        self._index.update(record, deltas)
        self._index.log_quietly([record.job_id], deltas)

    def _list_first(
        self, old: JobRecord, new: JobRecord, *, fsync: bool, prepared: Prepared | None = None
    ) -> None:
        """A job becoming live that queue.json does not list (a retried job): list it,
        then write its file. Written the other way round, a crash in between would leave a
        live job file that no index lists, which a process writing queue.json later keeps
        out, until its mtime is too old for the next opening to notice it. This way a
        crash leaves a listed id whose file says otherwise, which reading corrects."""
        deltas = finished_deltas(old, new)
        self._index.update(new, deltas)
        undo = {k: -v for k, v in deltas.items()}
        try:
            self._index.log([new.job_id], deltas)
        except BaseException:
            self._index.update(old, undo)  # refused: the index is as it was
            raise
        try:
            self._writer.write(new, fsync=fsync, replacing=True, prepared=prepared)
        except BaseException:
            self._index.update(old, undo)
            self._index.log_quietly([old.job_id], undo)
            raise

    def _read_as_listed(self, job_id: str, status: JobStatus) -> JobRecord | None:
        """The record of a job the index lists as ``status``, under the lock; None when
        its file is gone or says otherwise (the index then follows the file)."""
        record = self._read_locked(job_id, listed=True)
        if record is not None and record.status is not status:
            self._catch_up(record)
            return None
        return record

    def _read_locked(self, job_id: str, *, listed: bool = False) -> JobRecord | None:
        """The job's record, under the lock; None (and unlisted) if it has no file.
        ``listed``: read as one of many (see ``_read_listed``)."""
        mine = self._index.written.get(job_id)
        if mine is not None:
            # A safety net for hands editing the file; other writers show in the journal.
            try:
                st = os.lstat(self.job_path(job_id))  # a link is never the file we wrote
                if (st.st_ino, st.st_size, st.st_mtime_ns) == mine[0]:
                    return mine[1]
            except OSError:
                pass
            del self._index.written[job_id]
        record = self._read_listed(job_id) if listed else self._read(job_id)
        if record is None and job_id in self._index.order.entries:
            self._index.remove(job_id)
            self._index.log_quietly([job_id])
        return record


_OPEN_BACKENDS: weakref.WeakSet[FilesJobBackend] = weakref.WeakSet()


@atexit.register
def _checkpoint_at_exit() -> None:
    # A script that enqueues and exits leaves queue.json up to date, not only the journal.
    for backend in list(_OPEN_BACKENDS):
        with contextlib.suppress(Exception):
            if backend._lock.mine():
                backend.checkpoint()
