"""What every backend implements: thin storage primitives, no policy.

Policy (planning, resume, failures, durations, logging) lives once, in ``jobledger._taskset``
and ``jobledger._job_state`` (the queue's in ``jobledger._queue`` and the modules it names),
and reaches storage only through these methods. The contract test suite in
``tests/contract`` holds every backend to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from .._errors import JobLedgerError, LeaseHolder
from .._job_record import JobRecord, JobStatus
from .._limits import Limits, RateLimit
from .._schedules import StoredSchedule
from .._taskset_record import RunLease, TaskSetKey, TaskSetRecord

__all__ = [
    "CallerTransactionBackend",
    "Finding",
    "JobBackend",
    "Lease",
    "QueuedCounts",
    "Recovery",
    "TaskSetBackend",
]

#: What recovery of dead workers' jobs takes: ``keep(worker)`` spares a worker's jobs,
#: ``decide(job)`` is a dead worker's Running job's new record.
Recovery = tuple[Callable[[str | None], bool], Callable[[JobRecord], JobRecord]]


class Lease(Protocol):
    """A held run lease; dies with its process even if never released."""

    def release(self) -> None:
        """Give the lease back. Idempotent."""
        ...


@dataclass(frozen=True)
class Finding:
    """One problem a health check found, and what was done about it."""

    kind: str  # "corrupt", "temp", "stale-lease", "unreadable", "stray"
    where: str
    detail: str
    repaired: bool


class QueuedCounts(NamedTuple):
    """The Queued jobs of one type: how many are due now, how many wait for a later
    ``run_after``, and the earliest of those (ISO UTC; None when none waits)."""

    due: int
    delayed: int
    next_due: str | None


class TaskSetBackend(Protocol):
    """Storage of task-set records, one per (account, type, date)."""

    #: Where the data lives, for messages (a folder, or a URL without its password).
    location: str

    def load(self, key: TaskSetKey) -> TaskSetRecord | None:
        """The stored record, or None. Never takes a lock. A corrupt record is set aside,
        reported, and replaced by the last good generation where one exists."""
        ...

    def update(
        self, key: TaskSetKey, change: Callable[[TaskSetRecord | None], TaskSetRecord]
    ) -> TaskSetRecord:
        """Apply ``change`` to the latest stored record and store the result durably
        (as the backend's durability setting says) before returning it. ``change`` must not
        modify its argument. On error nothing stored changes. The argument may be a cached
        object or a fresh read: callers compare records by content, never by identity."""
        ...

    def lease(self, key: TaskSetKey, since: str, wait: bool | float) -> Lease:
        """Take the run lease of ``key``; raise AlreadyRunning if a live holder keeps it
        beyond ``wait`` (False: do not wait; True: wait forever; a number: seconds)."""
        ...

    def holder(self, key: TaskSetKey) -> LeaseHolder | None:
        """Who holds the run lease of ``key`` now, or None. Never takes the lease."""
        ...

    def keys(self, account: str | None = None) -> Iterator[TaskSetKey]:
        """Every stored task set (of one account if given), in no particular order."""
        ...

    def load_range(self, first: str, last: str, account: str | None = None) -> list[TaskSetRecord]:
        """The stored records dated ``first`` to ``last`` (ISO dates, inclusive; of one
        account if given), in no particular order: what :meth:`load` would give for each
        of those keys, read in one go where the storage can (one query). A record that
        :meth:`load` would give as None is left out."""
        ...

    def leases(self) -> list[RunLease]:
        """Every run lease stored now: those of live holders, and those left behind by a
        holder that died (``alive`` False), in no particular order. Never takes a lease,
        never removes one (``check`` with ``repair`` does)."""
        ...

    def delete(self, key: TaskSetKey) -> None:
        """Remove a task set and everything stored with it (generations, lease)."""
        ...

    def usage(self) -> tuple[int, int]:
        """(bytes, number of files or rows) the state takes up."""
        ...

    def check(self, repair: bool) -> list[Finding]:
        """Check every stored item; repair what can be repaired when asked."""
        ...


class JobBackend(Protocol):
    """Storage of jobs. Serving order is fixed by the contract: recovered jobs first, then
    higher priority, then lower ``seq`` (FIFO); a job with ``run_after`` later than now is
    not due. Transitions are computed by the policy (``change`` and ``decide``) and applied
    atomically by the backend."""

    location: str
    #: The most jobs one batch of :meth:`prune` deletes.
    prune_batch: int
    #: How long :meth:`prune` pauses after a batch, as a multiple of the time it took.
    prune_pause: float

    def put(
        self,
        records: Sequence[JobRecord],
        fresh: frozenset[str] = frozenset(),
        *,
        unique_since: str | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """Store new jobs durably, assigning each a ``seq``; an existing id is returned as
        stored with False and nothing is written (idempotent enqueue). ``fresh`` names ids
        of these records that were just generated (random UUIDs), which no stored job can
        have: a backend may skip looking for them.

        ``records`` may be built as they are first read (``_enqueue.LazyRecords``), and
        building one may raise: then nothing may be stored. A backend that writes job by
        job reads them all first; one that streams them in one transaction need not.

        A record with a ``unique_key`` is not stored while a Queued or Running job holds
        that key, nor, with ``unique_since`` (ISO UTC), while the key's latest job
        finished at or after it: that job is returned with False (an existing id is
        looked at first). Of the records of one batch with one key, the first is stored
        and the others get it. One winner across threads and processes: two live jobs
        never share a key."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The stored job or None. Never blocks on the queue."""
        ...

    # Schedules (``_schedules.py`` holds their policy: what is due, what a firing enqueues).

    def schedules(self) -> list[StoredSchedule]:
        """Every stored schedule, in name order. Never writes; cheap to ask every second
        (a folder: a stat of schedules.json, read again only when it changed;
        PostgreSQL: one query of a small table)."""
        ...

    def change_schedule(
        self,
        name: str,
        change: Callable[[StoredSchedule | None], tuple[StoredSchedule | None, list[JobRecord]]],
    ) -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
        """Atomically: ``change(the stored schedule, or None)`` gives the schedule to
        store (None: delete it) and the jobs to enqueue; the jobs are put (as :meth:`put`
        puts them: an existing id is left as it is) and the schedule stored, one change
        for every other process: two processes changing one schedule wait for each other.
        ``change`` returning the stored object itself writes no schedule. Returns the
        schedule now stored and :meth:`put`'s answer for the jobs. A crash may leave the
        jobs stored and the schedule not: a firing again finds their ids stored."""
        ...

    def next_seq(self) -> int:
        """A ``seq`` above every one assigned so far."""
        ...

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
        """Atomically make the first ``limit`` due Queued jobs (of ``types``, in the
        named ``queues``; None: any, in serving order) Running under ``worker``, attempts
        + 1, ``started`` = now, and return them in serving order (empty when none is
        due). One winner per job across processes.

        The stored limits (:meth:`limits`) are obeyed exactly, across processes: a job of
        a limited queue is not taken while that queue's Running jobs are at its limit, nor
        one whose rate key had its type's ``n`` starts in the window (``_limits.Gate``
        decides, from the counts taken under the claim's lock); a start of a rate-limited
        type is stored with the claim. A claim with no limit to obey pays (almost)
        nothing for them.
        A backend that learns of a worker's death at once (PostgreSQL: its session ended)
        first recovers that worker's Running jobs with ``recover`` (``keep``, ``decide``,
        as :meth:`recover` takes them), so the claim serves them first; others ignore it."""
        ...

    def swap(self, pairs: list[tuple[JobRecord, JobRecord]]) -> list[JobRecord | None]:
        """For each (claimed, new) pair, durably write ``new``'s changes (the fields in
        which it differs from ``claimed``) where the stored job still holds that claim
        (``_swap.holds_claim``: Running under the same worker, attempt and start); the
        write fenced by the storage itself, with no ``change`` to call. Returns, in order,
        the new record where written, None where not (nothing written: the caller takes
        :meth:`transition_many` to learn why). Each job at most once (ValueError). One
        statement (PostgreSQL) or one lock hold (files)."""
        ...

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
        """:meth:`swap`, then :meth:`claim`, together (a worker's completions recorded with
        its next claim): one statement (PostgreSQL) or one lock hold (files). Returns the
        swap's outcomes and the claimed records. The swap's writes are durable when this
        returns, even if the claim then failed (files: its error is logged, no job is
        claimed)."""
        ...

    def transition(
        self, job_id: str, change: Callable[[JobRecord], JobRecord], *, fsync: bool = True
    ) -> JobRecord:
        """Atomically replace a job with ``change(job)``; JobNotFound if there is none.
        ``change`` may raise to refuse, and then nothing is written."""
        ...

    def transition_many(
        self,
        changes: list[tuple[str, Callable[[JobRecord], JobRecord]]],
        *,
        fsync: bool = True,
    ) -> list[JobRecord | JobLedgerError]:
        """Apply each (job id, change) as :meth:`transition` would, as one batch (one
        lock or transaction, one durable write where the storage allows). Returns, in
        order, the new record, or the JobLedgerError (JobNotFound, or what ``change``
        raised) that refused that job; a refused job is left as it was."""
        ...

    def recover(
        self, keep: Callable[[str | None], bool], decide: Callable[[JobRecord], JobRecord]
    ) -> list[JobRecord]:
        """For every Running job whose worker is dead (and not ``keep(worker)``), store
        ``decide(job)``; return the new records."""
        ...

    def live(self, status: JobStatus | None = None) -> list[JobRecord]:
        """Queued and Running jobs in serving order (Running first)."""
        ...

    def all_records(self) -> Iterator[JobRecord]:
        """Every job, history included (listing only; costs what history costs)."""
        ...

    def counts(self) -> dict[str, int]:
        """Jobs per status value, without reading history."""
        ...

    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of ``types``), due or not."""
        ...

    def queued_by_type(
        self, now: str, queues: frozenset[str] | None = None
    ) -> dict[str, QueuedCounts]:
        """The Queued jobs per type (only types that have some; of ``queues`` when given),
        due or not at ``now``. From the index (files) or one aggregate query
        (PostgreSQL): a worker asks when it starts and when it goes idle."""
        ...

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue (only queues that have some) and per status (every status, zeros
        included), without reading history (files) or in one aggregate query."""
        ...

    # Limits (``_limits.py`` holds their policy). Stored where every worker reads them.

    def limits(self) -> Limits:
        """Every stored limit. A read: never writes."""
        ...

    def set_limit(self, queue: str, limit: int | None) -> None:
        """Store the most Running jobs of ``queue`` (None: no limit), durably; every
        claim that starts after this returns obeys it."""
        ...

    def set_rate_limit(self, job_type: str, rate: RateLimit | None) -> None:
        """Store ``job_type``'s rate limit (None: none), durably; as :meth:`set_limit`."""
        ...

    def prune(self, cutoff: str, on_batch: Callable[[int], None] | None = None) -> int:
        """Delete finished jobs whose ``finished`` is before ``cutoff`` (or who have none);
        how many. In batches of at most ``prune_batch`` jobs, each stored on its own (its
        own transaction, its own hold of the queue lock), each followed by a pause
        (``prune_pause`` times as long as it took), so that workers never wait long behind
        a prune; ``on_batch(n)`` is called after each, with how many it deleted.
        Stopped between two batches (``on_batch`` raised, KeyboardInterrupt), the batches
        before stay deleted and the queue is whole."""
        ...

    def import_records(self, records: list[JobRecord]) -> list[str]:
        """Store ``records`` exactly as given (status, attempts, ``seq``...), durably, for
        ``jobledger export``; the ids already stored are left as they are and returned.
        A later enqueue gets a ``seq`` above every imported live job's: it is served after
        them at the same priority."""
        ...

    # Workers. A worker id comes from ``_identity.new_worker_id`` (the policy makes it);
    # a backend records it and tells whether its process is alive: the files backend by
    # an OS lock the process holds, PostgreSQL by a lease its heartbeat renews.

    def register_worker(self, worker: str, since: str) -> Lease:
        """Mark ``worker`` alive until the lease is released or its process dies."""
        ...

    def worker_alive(self, worker: str) -> bool:
        """Whether ``worker`` is alive now."""
        ...

    def live_workers(self) -> list[str]:
        """The ids of the live workers."""
        ...

    def clear(self) -> int:
        """Delete every job; refuse (JobLedgerError) while any worker is alive."""
        ...

    def checkpoint(self) -> None:
        """Make any derived index (``queue.json``) current; a no-op where there is none."""
        ...

    def watch(
        self, callback: Callable[[], None], *, on_cancel: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when other processes may have made jobs
        claimable, and ``on_cancel`` when they may have asked a Running job to stop
        (a change setting ``cancel_requested_at``), where the storage can tell; returns
        the function that stops watching. Only a speed-up: workers poll as well."""
        ...

    def cancel_requests(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` that are Running with a cancel request stored
        (``cancel_requested_at``); unknown ids are left out. Cheap: a worker asks it about
        its running jobs every poll (a folder: a stat per job, a file read only when it
        changed; PostgreSQL: one query)."""
        ...

    def watch_finished(self, callback: Callable[[str | None], None]) -> Callable[[], None] | None:
        """Call ``callback(job_id)`` (from any thread) when another process may have
        finished that job (Completed, Failed or Cancelled), ``callback(None)`` when it may
        have finished any; returns the function that stops watching, or None when the
        storage cannot tell (``JobQueue.wait`` then polls). Only a speed-up: a wait reads
        the job again every ``poll_interval`` as well."""
        ...

    def close(self) -> None:
        """Release connections and file descriptors."""
        ...


@runtime_checkable
class CallerTransactionBackend(Protocol):
    """A job backend that can also store jobs inside its caller's own open transaction
    (PostgreSQL: on the caller's psycopg connection), for ``enqueue(..., connection=)``.
    Optional: a backend without transactions of its callers (a folder) lacks it, and the
    queue refuses ``connection=`` for it."""

    def put_in_transaction(
        self,
        connection: object,
        records: Sequence[JobRecord],
        fresh: frozenset[str] = frozenset(),
    ) -> list[tuple[JobRecord, bool]]:
        """:meth:`JobBackend.put` inside the caller's transaction on ``connection``: the
        jobs, and their wake-up, exist if and only if that transaction commits. Refuses
        a connection of another kind (TypeError) or one with no transaction to join
        (ConfigError) before anything is written."""
        ...
