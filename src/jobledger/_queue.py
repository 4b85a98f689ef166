"""JobQueue: a durable queue of long jobs, kept as job files (or in PostgreSQL), crash-safe.

The queue's one public class. It holds the queue's policy together and reaches storage
only through a backend's primitives (``backends/_contract.py``); each part of the policy
is in a module of its own:

- ``_enqueue.py``: a new job's record, and every check made before it is stored;
- ``_job_transitions.py``: complete, fail, requeue, cancel and retry as changes of one
  record, the fenced ones refused to any worker but the job's own;
- ``_retry_policy.py``: retries with exponential backoff up to ``max_attempts``, and what
  becomes of a dead worker's job;
- ``_snooze.py``: a job its handler snoozes, back to Queued for later, its attempt not
  counted;
- ``_caller_transaction.py``: an enqueue inside the caller's own PostgreSQL transaction;
- ``_job_view.py``: the public :class:`Job` a stored record is handed out as;
- ``_watchers.py``: the wake-ups of those waiting for claimable jobs;
- ``_waiting.py``: :meth:`JobQueue.wait`, and the wake-ups of those waiting for a job's
  outcome.

Serving order (recovered first, then priority, then FIFO) is ``JobRecord.sort_key``.

Invariants:
- an ``enqueue`` that returned is stored (fsynced under ``durability="fsync"``), and so is
  a returned ``complete``, ``fail`` or ``cancel``;
- a Running job belongs to exactly one live worker; liveness comes from an OS lock that
  dies with the worker's process, never from a timestamp guess;
- a job runs again only if its worker died (or stopped) before its completion was recorded;
- a job that kills its worker is retried at most ``max_attempts`` times in all.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._clock import Clock, SystemClock, iso_utc
from ._config import DURABILITIES
from ._durations import to_seconds
from ._errors import ConfigError, JobCancelled, JobConflict, JobLedgerError
from ._held_claims import HeldClaims
from ._job_fields import JobStatus
from ._job_record import JobRecord
from ._job_transitions import (
    Change,
    cancelling,
    completing,
    completions,
    failing,
    failure_text,
    json_ready,
    log_failure,
    requeueing,
    retrying,
    settled,
)
from ._job_view import Job, JobViews
from ._limits import check_queue_name
from ._log import log, verbose_from_env
from ._queue_enqueue import QueueEnqueue
from ._queue_limits import QueueLimits
from ._queue_pages import QueuePages
from ._queue_reads import QueueReads
from ._queue_schedules import QueueSchedules
from ._retry_policy import after_worker_died
from ._snooze import log_snooze, snoozing
from ._waiting import FinishWatch
from ._watchers import Watchers
from .backends import open_job_backend
from .backends._contract import JobBackend, Lease, Recovery
from .backends._identity import new_worker_id

__all__ = ["JobQueue"]


def _queue_names(queues: Iterable[str] | None) -> frozenset[str] | None:
    """The queue names a claim serves, checked (None: every queue)."""
    if queues is None:
        return None
    if isinstance(queues, str):
        queues = [queues]
    return frozenset(check_queue_name(q) for q in queues)


class JobQueue(QueueEnqueue, QueueLimits, QueueSchedules, QueueReads, QueuePages):
    """A durable job queue in ``dir`` (``jobs/<job_id>.json`` and ``queue.json``), or in
    PostgreSQL when ``dir`` is a ``postgresql://`` URL (psycopg 3; from a clone,
    ``pip install -e '.[postgres]'``).

    The folder is created by the queue's first use (a missing one is a new, empty queue);
    the URL must name a database (``postgresql://user@host:5432/dbname``), whose tables are
    created on first use. A string that looks like another URL (``mysql://...``,
    ``postgresql:/host/db``) raises :class:`ConfigError` rather than becoming a folder.

    ``JobQueue(dir, durability="fsync")``; ``durability="flush"`` skips fsyncs (survives a
    process crash, not a power loss). On PostgreSQL every write, claims included, is then
    committed without waiting for the WAL flush: after a server crash, jobs claimed in its
    last moments can read Queued again and be run by a second worker while the first
    still runs them (under "fsync" a claim is durable before it returns). Durations take
    a timedelta or seconds (0 or more): ``retry_delay`` and ``max_retry_delay`` shape the
    exponential backoff of failed jobs; ``recover_every`` is how often a claiming process
    looks for jobs of dead workers.
    ``worker_lease`` (PostgreSQL only, default 6 s) is how long a worker that stopped
    renewing its lease counts as alive; a folder needs none (the OS tells). Nothing is read
    until first use.

    ``backend=`` takes a job backend as is, instead of ``dir`` (tests give a PostgreSQL
    one with a short lease and a fast heartbeat, say): :attr:`dir` is then its
    ``location``, and it serves the reading methods too (it is its own read-only twin).
    Giving it with ``dir`` or ``worker_lease`` raises ConfigError.

    The reading methods (:meth:`get`, :meth:`list`, :meth:`counts`) of a queue used only
    for reading never write: they go through a read-only twin of the backend, which takes
    no lock, recovers no job, repairs and creates nothing (a folder is left byte for byte
    as it was) and never migrates a database. Every other method works as a writer: on its
    first use it recovers dead workers' jobs, repairs and (PostgreSQL) migrates; from then
    on the reading methods read through the writer's index too (what it repaired is done).
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        durability: str = "fsync",
        *,
        retry_delay: dt.timedelta | float = 1.0,
        max_retry_delay: dt.timedelta | float = 300.0,
        recover_every: dt.timedelta | float = 2.0,
        clock: Clock | None = None,
        worker_lease: dt.timedelta | float | None = None,
        backend: JobBackend | None = None,
    ) -> None:
        if durability not in DURABILITIES:
            raise ConfigError(f"durability must be 'fsync' or 'flush', got {durability!r}")
        verbose_from_env()
        self.durability = durability
        self.clock: Clock = clock or SystemClock()
        self.retry_delay = to_seconds(retry_delay, "retry_delay")
        self.max_retry_delay = to_seconds(max_retry_delay, "max_retry_delay")
        self.recover_every = to_seconds(recover_every, "recover_every")
        if worker_lease is not None:
            worker_lease = to_seconds(worker_lease, "worker_lease")
        self._worker_lease = worker_lease
        self._reader: JobBackend | None = None
        self._reader_guard = threading.Lock()
        self._location: str | os.PathLike[str] | None = None  # where the reader opens
        self.backend: JobBackend
        if backend is not None:
            if dir is not None or worker_lease is not None:
                raise ConfigError(
                    "JobQueue got a backend and also "
                    f"{'dir' if dir is not None else 'worker_lease'}: a backend given as "
                    "is already knows its place and lease; give one or the other"
                )
            self.backend = backend
            self._reader = backend  # a backend given as is: it is its own reader
        elif dir is None:
            raise ConfigError(
                "JobQueue needs its place: a folder or a postgresql:// URL (dir=...), "
                "or a backend (backend=...)"
            )
        else:
            self._location = dir
            self.backend = self._make_backend(read_only=False)
        # A folder's absolute path, or the URL without its password, for messages.
        self.dir = self.backend.location
        self._worker_id: str | None = None
        self._worker_lock: Lease | None = None
        self._worker_guard = threading.Lock()
        self._worker_pid = os.getpid()
        self._recovered_at: float | None = None
        # The claims this object handed out, which its complete, fail and requeue write
        # by the backend's swap (see _held_claims.py).
        self._held = HeldClaims()
        # record -> Job, warning once per undecodable type (a bound method: called per job)
        self._job = JobViews().view
        self._watchers = Watchers()
        self._finished = FinishWatch()  # the waits of wait(), and what wakes them

    def _make_backend(self, *, read_only: bool) -> JobBackend:
        assert self._location is not None  # a backend given as is is its own reader
        return open_job_backend(
            self._location,
            fsync=self.durability == "fsync",
            clock=self.clock,
            read_only=read_only,
            worker_lease=self._worker_lease,
            what="JobQueue's dir",
        )

    @property
    def reader(self) -> JobBackend:
        """The read-only twin of :attr:`backend` that the reading methods use (built on
        first use): it never locks, recovers, repairs, creates or migrates anything."""
        with self._reader_guard:
            if self._reader is None:
                self._reader = self._make_backend(read_only=True)
            return self._reader

    def _reader_backend(self) -> JobBackend:
        return self.reader

    def _reading(self) -> JobBackend:
        """The backend a reading method uses: the writer's once this queue has written
        (its first use recovered and repaired already, and its index is in memory), else
        the read-only twin."""
        return self.backend if self._recovered_at is not None else self.reader

    def __repr__(self) -> str:
        return f"JobQueue({self.dir!r})"

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this process's worker lock and open files."""
        self._finished.close()
        self._close_reads()
        with self._worker_guard:
            if self._worker_lock is not None:
                self._worker_lock.release()
                self._worker_lock = None
                self._worker_id = None
            self._held.clear()
        self.backend.close()
        with self._reader_guard:
            reader = self._reader
            if self._location is not None:
                self._reader = None  # opened again on next use
        if reader is not None and reader is not self.backend:
            reader.close()

    def _opened(self) -> JobBackend:
        """The backend, after the first use's recovery of dead workers' jobs."""
        if self._recovered_at is None:
            self._recover()
        return self.backend

    # -- identity -------------------------------------------------------------------------

    @property
    def worker_id(self) -> str:
        """This process's worker id; taking it takes the worker's liveness lock."""
        with self._worker_guard:
            if self._worker_pid != os.getpid():
                # A fork()ed child is a new worker: the parent's id and lock stay the parent's.
                self._worker_id, self._worker_lock = None, None
                self._worker_pid = os.getpid()
                self._held.clear()
            if self._worker_id is None:
                worker = new_worker_id(os.getpid())
                self._worker_lock = self.backend.register_worker(worker, iso_utc(self.clock.now()))
                self._worker_id = worker
                log.info("Worker %s registered on %s", worker, self.dir)
            return self._worker_id

    # -- wake-ups -------------------------------------------------------------------------

    def watch(
        self, callback: Callable[[], None], *, on_cancel: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``callback()`` (from any thread) whenever jobs may have become claimable:
        at once for changes made through this object, and for other processes' changes
        where the storage can tell (PostgreSQL: LISTEN/NOTIFY). Returns the function that
        stops watching. A ``Worker`` uses it to wake from its idle wait; it still polls.
        ``on_cancel()`` is called the same way when a Running job's cancel is asked (a
        Worker then looks at once for requests to its running jobs)."""
        return self._watchers.watch(self.backend, callback, on_cancel)

    def _wake(self) -> None:
        self._watchers.wake()

    # -- claim and finish -----------------------------------------------------------------

    def claim(
        self,
        worker: str | None = None,
        types: Iterable[str] | None = None,
        *,
        queues: Iterable[str] | None = None,
    ) -> Job | None:
        """Take the next due job, or None. One winner across threads and processes.

        The job becomes Running under this process's worker id (``worker`` only names it
        in logs), attempts + 1. Jobs of dead workers are recovered first when due. Of
        ``types`` and in ``queues`` (names; None: every queue), within the stored limits
        (:meth:`set_limit`, :meth:`set_rate_limit`).
        """
        jobs = self.claim_many(1, worker=worker, types=types, queues=queues)
        return jobs[0] if jobs else None

    def claim_many(
        self,
        limit: int,
        worker: str | None = None,
        types: Iterable[str] | None = None,
        *,
        queues: Iterable[str] | None = None,
    ) -> builtins.list[Job]:
        """Take up to ``limit`` due jobs at once, in serving order (one lock or one
        statement for all); empty when none is due. Each is claimed as by :meth:`claim`."""
        if not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be an integer >= 1, got {limit!r}")
        wanted = frozenset(types) if types is not None else None
        of_queues = _queue_names(queues)
        wid, backend = self._claimer()
        claimed = backend.claim(
            wid,
            iso_utc(self.clock.now()),
            wanted,
            limit,
            recover=self._recovery(),
            queues=of_queues,
        )
        return self._handed_out(claimed, worker)

    def _claimer(self) -> tuple[str, JobBackend]:
        """This worker's id and the backend, once dead workers' jobs are recovered if due."""
        wid = self.worker_id
        backend = self._opened()
        if self.clock.monotonic() - (self._recovered_at or 0.0) >= self.recover_every:
            self._recover()
        return wid, backend

    def _handed_out(
        self, claimed: builtins.list[JobRecord], worker: str | None
    ) -> builtins.list[Job]:
        """Claimed records held (for swaps), logged and turned into jobs."""
        self._held.hold(claimed)
        for running in claimed:
            log.info(
                "Claimed job %s (%s), attempt %d of %d%s",
                running.job_id,
                running.type,
                running.attempts,
                running.max_attempts,
                f" by {worker}" if worker else "",
            )
        return [self._job(r) for r in claimed]

    def _record_and_claim(
        self,
        results: builtins.list[tuple[str, Any]],
        limit: int,
        types: frozenset[str] | None,
        queues: frozenset[str] | None = None,
    ) -> tuple[builtins.list[Job], int, JobConflict | None]:
        """Record the success of finished jobs (as :meth:`record_completions`) and claim up
        to ``limit`` jobs of ``types`` (as :meth:`claim_many`) in one backend call: one
        statement on PostgreSQL, one lock hold on files (a Worker's group commit). Returns
        the jobs claimed, how many completions were recorded, and the JobConflict that
        :meth:`record_completions` would have raised for the refused ones (or None)."""
        for job_id, result in results:
            json_ready(result, f"the result of job {job_id}")
        wid, backend = self._claimer()
        now = iso_utc(self.clock.now())
        changes = [(job_id, completing(result, now, wid)) for job_id, result in results]
        planned = self._held.plan(changes)
        swapped, claimed = backend.swap_and_claim(
            planned.pairs, wid, now, types, limit, recover=self._recovery(), queues=queues
        )
        jobs = self._handed_out(claimed, None)
        outcomes = planned.finish(backend, swapped, claimed=claimed)
        done, conflict = completions([job_id for job_id, _ in results], outcomes)
        return jobs, len(done), conflict

    def complete(self, job_id: str, result: Any = None) -> Job:
        """Record success (fsynced). Fenced: only the worker running the job may."""
        json_ready(result, f"the result of job {job_id}")
        finished = iso_utc(self.clock.now())
        done = self._change(job_id, completing(result, finished, self._worker_id))
        log.info("Completed job %s", job_id)
        self._finished.waiters.wake_finished((done,))
        return self._job(done)

    def complete_many(
        self, results: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> builtins.list[Job]:
        """Record the success of many jobs as one durable batch: ``results`` maps job ids
        to results (or is a list of (job id, result) pairs). Fenced like :meth:`complete`.

        Every completion that can be recorded is; if any is refused (a job no longer
        Running under this worker, or unknown), :class:`JobConflict` is raised afterwards,
        naming each refused job and why (its ``refused`` maps job id to that error).
        Returns the completed jobs."""
        return [self._job(record) for record in self._complete_many(results)]

    def record_completions(self, results: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        """:meth:`complete_many` returning only how many completions were recorded: it
        does not turn each stored job back into a :class:`Job` (decoding its payload),
        which a caller that only counts, such as :class:`Worker`, does not need. Fenced,
        durable and raising exactly as :meth:`complete_many`."""
        return len(self._complete_many(results))

    def _complete_many(
        self, results: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> builtins.list[JobRecord]:
        """:meth:`complete_many`, returning the stored records."""
        pairs = builtins.list(results.items() if isinstance(results, Mapping) else results)
        for job_id, result in pairs:
            json_ready(result, f"the result of job {job_id}")
        if not pairs:
            return []
        backend = self._opened()
        changes = [
            (job_id, completing(result, iso_utc(self.clock.now()), self._worker_id))
            for job_id, result in pairs
        ]
        outcomes = self._held.apply(backend, changes)
        self._finished.waiters.wake_finished(o for o in outcomes if isinstance(o, JobRecord))
        return settled([job_id for job_id, _ in pairs], outcomes)

    def fail(self, job_id: str, error: BaseException | str) -> Job:
        """Record a failed attempt: retried after a backoff until ``max_attempts``, then
        Failed. Fenced like :meth:`complete`. An exception's full traceback is kept with
        the job (``Job.traceback``) and logged with the failure. A job whose cancel was
        asked, or whose ``error`` is :class:`JobCancelled`, is Cancelled instead."""
        text, trace = failure_text(error)
        # A handler that stopped for a cancel: the job ends Cancelled, without a traceback.
        stopped = isinstance(error, JobCancelled)
        change = failing(
            text,
            None if stopped else trace,
            self.clock.now(),
            self._worker_id,
            self.retry_delay,
            self.max_retry_delay,
            cancelled=stopped,
        )
        new = self._change(job_id, change)
        if new.status is JobStatus.QUEUED:
            self._wake()
        if new.status is JobStatus.CANCELLED:
            log.info("Cancelled job %s: %s", job_id, new.error_message)
        else:
            log_failure(new, text, trace)
        self._finished.waiters.wake_finished((new,))
        return self._job(new)

    def snooze(self, job: str | Job, seconds: dt.timedelta | float) -> Job:
        """Queue a job this worker runs again ``seconds`` (timedelta or seconds) from
        now, its attempt not counted, no error recorded (a handler's
        :class:`jobledger.Snooze`; see ``_snooze.py``). Fenced like :meth:`fail`, and by the
        attempt when given the claimed :class:`Job`. Cancelled if its cancel was asked."""
        wait = to_seconds(seconds, "seconds")
        job_id = job if isinstance(job, str) else job.job_id
        attempt = None if isinstance(job, str) else (job.attempts, job.started)
        change = snoozing(job_id, wait, self.clock.now(), self._worker_id, attempt)
        new = self._opened().transition(job_id, change)
        if new.status is JobStatus.QUEUED:
            self._wake()  # one of 0 s is due at once
        else:  # Cancelled: its cancel was asked
            self._finished.waiters.wake_finished((new,))
        log_snooze(new, wait)
        return self._job(new)

    def requeue(self, job_id: str) -> Job:
        """Give back a job this worker runs (a graceful stop): Queued again, ahead of the
        queue, and the interrupted attempt is not counted. A job whose cancel was asked
        is Cancelled instead."""
        back = self._change(job_id, requeueing(self._worker_id, iso_utc(self.clock.now())))
        if back.status is JobStatus.CANCELLED:
            log.info("Cancelled job %s: %s", job_id, back.error_message)
        else:
            self._wake()
            log.info("Requeued job %s", job_id)
        return self._job(back)

    def _attempt_wrote(self, records: builtins.list[JobRecord]) -> None:
        """A running attempt's own writes (progress, checkpoints) of jobs this object
        claimed: its later completion, failure or requeue is written against them."""
        self._held.refresh(records)

    def _change(self, job_id: str, change: Change) -> JobRecord:
        """A fenced change of one job (complete, fail, requeue): by swap where this object
        holds the job's claim, else by the backend's transition; raises its refusal."""
        [outcome] = self._held.apply(self._opened(), [(job_id, change)])
        if isinstance(outcome, JobLedgerError):
            raise outcome
        return outcome

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a Queued one is Cancelled at once (durable when this returns).
        A Running one is asked to stop: the request is stored (``cancel_requested_at``)
        and the job stays Running under its worker, which is told (PostgreSQL: at once,
        by NOTIFY; a folder: within the Worker's ``cancel_poll``, 1 s by default). A
        handler sees ``job.cancel_requested``, and ``job.check()`` raises JobCancelled;
        its attempt then ends Cancelled, never retried (as when its worker dies or stops
        first). A handler that returns a result anyway completes the job with it. Asking
        again changes nothing; a finished job raises JobConflict."""
        change = cancelling(job_id, iso_utc(self.clock.now()))
        new = self._opened().transition(job_id, change)
        if new.status is JobStatus.RUNNING:
            log.info("Asked worker %s to stop job %s (cancel)", new.worker, job_id)
            self._watchers.cancel_asked()
        else:
            log.info("Cancelled job %s", job_id)
            self._finished.waiters.wake_finished((new,))
        return self._job(new)

    def retry(self, job_id: str) -> Job:
        """Queue a Failed or Cancelled job again, with a fresh attempt count."""
        backend = self._opened()
        new = backend.transition(job_id, retrying(job_id, backend.next_seq))
        self._wake()
        log.info("Retrying job %s", job_id)
        return self._job(new)

    # -- recovery -------------------------------------------------------------------------

    def recover(self) -> builtins.list[Job]:
        """Return the Running jobs of dead workers to the front of the queue now (or fail
        them past ``max_attempts``). Also done on first use and, while claiming, every
        ``recover_every`` seconds."""
        return [self._job(r) for r in self._recover()]

    def _recovery(self) -> Recovery:
        """How a dead worker's Running job is recovered: this process's own worker's jobs
        are kept, any other's goes back to the queue (or fails past ``max_attempts``)."""
        mine = self._worker_id

        def decide(record: JobRecord) -> JobRecord:
            return after_worker_died(record, iso_utc(self.clock.now()))

        return (lambda w: w is not None and w == mine), decide

    def _recover_before_due(self, within: float) -> None:
        """Run the periodic recovery of :meth:`claim_many` now if it falls due within
        ``within`` seconds. An idle :class:`Worker` calls it before each wait (``within``
        its poll interval), so that the claim a wake-up brings within that wait never pays
        for a recovery (a transaction of its own: a few round trips on PostgreSQL, 1-3 ms
        added to that job's start); it still runs every ``recover_every`` seconds. Where
        every claim recovers (``recover_every`` 0), it does nothing."""
        if self._recovered_at is None or self.recover_every <= 0:
            return
        if self.clock.monotonic() - self._recovered_at + within >= self.recover_every:
            self._recover()

    def _recover(self) -> builtins.list[JobRecord]:
        self._recovered_at = self.clock.monotonic()
        recovered = self.backend.recover(*self._recovery())
        if any(r.status is JobStatus.QUEUED for r in recovered):
            self._wake()
        self._finished.waiters.wake_finished(recovered)
        return recovered

    def clear(self) -> int:
        """Delete every job and the index. Refuses while any worker is alive (a
        queue folder may be emptied only while nothing serves it)."""
        self.close()
        return self.backend.clear()
