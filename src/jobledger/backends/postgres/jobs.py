"""The job queue in PostgreSQL: ``jobledger_jobs``, ``jobledger_workers`` and a sequence.

- ``claim`` is ONE statement: an UPDATE of the row picked, in serving order, by a
  subquery with FOR UPDATE SKIP LOCKED. Concurrent claimers skip each other's rows instead
  of waiting: one winner per job, and no claimer ever blocks on another.
- ``transition`` and ``recover`` lock the rows (SELECT ... FOR UPDATE), let the policy
  compute the new records in Python, and write them, in one transaction.
- ``put`` is INSERT ... ON CONFLICT DO NOTHING: enqueueing an existing id writes nothing
  and returns the stored job (idempotent enqueue). A batch of generated ids, which no
  stored job can have, goes in by COPY instead, a third of the server's work. One job
  (at durability "fsync") is ONE statement in autocommit, its seq, NOTIFY and the read of
  an existing id included: one round trip (``_put_one``).
- Each transaction that makes jobs claimable sends one NOTIFY, which ``watch`` listens
  for on a session of its own (``_listen.py``): idle workers wake at once, and poll too.
  One that asks a Running job to stop (``cancel_requested_at`` set) sends one on
  ``jobledger_cancels``: its worker, listening on the same session, looks at once.
  Each transaction that finishes jobs (Completed, Failed, Cancelled) sends one NOTIFY on
  a channel of its own naming them, which ``watch_finished`` listens for
  (``JobQueue.wait``).
- Every Running job carries a lease (``lease_until``, server time), set by its claim. A
  worker is alive while its row's ``lease_until`` is in the future. A heartbeat thread,
  started by ``register_worker`` on a connection of its own, pushes both forward every
  ``heartbeat`` seconds: the worker's row, and the leases of the jobs still Running under
  that worker (fenced by worker and status); a stopped worker deletes its row. A job whose
  lease ran out (``worker_lease`` seconds without a beat: its worker died, hung or lost the
  network), or whose worker is known gone (it stopped, or its row's lease ran out), is
  recovered by any live worker. Times here are the server's, so clients' clocks
  do not matter; job times (created, run_after...) are the queue's clock, as ISO strings.
- A lost connection (a server restart) runs the method's transaction again on a new
  connection (``_db.reconnecting``). A COMMIT of unknown outcome is settled by reading
  back the rows it wrote, never by ``txid_status`` (a server that crashed during the
  COMMIT reuses the lost transaction's xid, and another transaction's commit would read as
  the lost one's): ``put`` runs again, inserting nothing twice (the id is the key), and a
  job found with the ``seq`` and ``created`` the lost attempt gave it is that attempt's
  landed insert, returned as new; ``claim`` reads its rows back: those still Running under
  this worker from that very claim (same attempt and start) are its result (so a claim
  that landed is never followed by a second one, leaving the first Running under this
  live worker, run by no one); none, and it runs again. ``transition`` runs again, and
  under its row locks takes a row found exactly as the lost attempt wrote it (status and
  stamps, with the claim's worker, attempt and start) for landed: that job's outcome is
  the lost attempt's, its change is not applied a second time; any other row gets its
  change (fenced by the policy, which refuses a job no longer this worker's). Reads,
  ``recover``, ``prune`` and ``clear`` are idempotent (a rerun finds the work done and
  reports less).
- ``claim`` commits durably (``synchronous_commit`` as the server has it, on by default)
  unless the queue's durability is "flush": a server crash cannot forget a claim that
  returned and hand its job to a second worker while the first runs it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._clock import Clock, SystemClock
from ..._enqueue import key_taken_conflict
from ..._errors import JobLedgerError, JobNotFound
from ..._inputs import findable
from ..._job_record import JobRecord, JobStatus
from ..._schedules import StoredSchedule
from .._contract import QueuedCounts, Recovery
from . import _queries as q
from ._db import Database, reconnecting
from ._errors import DatabaseError
from ._heartbeat import WorkerLease
from ._listen import CANCEL_CHANNEL, CHANNEL, FinishListener, Listener, notify, notify_finished
from ._put import (
    first_of_each,
    insert_new,
    landed,
    put_once,
    put_outcomes,
    refuse_taken_keys,
    settle_lost,
)
from ._rows import SEQ, doc_of, record_of, same

__all__ = ["PostgresJobBackend"]

log = logging.getLogger("jobledger")

_FINISHED = sorted(s.value for s in JobStatus.FINISHED)
# Seconds a worker that stopped renewing counts as alive. Short enough that a dead
# machine's jobs run again within 10 s (the lease plus a live worker's recover_every of
# 2 s), long enough to ride out a few missed heartbeats (one every lease / 5 seconds).
DEFAULT_WORKER_LEASE = 6.0
# The two-key advisory lock space of schedule names (objsubid 2 in pg_locks), apart from
# the migrations' ("jlmg"), the unique keys' ("jluk", _put.py) and the leases' locks.
_SCHEDULE_LOCK = 0x6A6C7363  # "jlsc"


def _schedule_of(name: str, record: Any) -> StoredSchedule:
    """A schedule row's record; a damaged one (edited by hand) raises DatabaseError."""
    try:
        return StoredSchedule.from_json(name, record)
    except ValueError as exc:
        raise DatabaseError(
            f"the row of schedule {name!r} in jobledger_schedules does not read back: {exc}; "
            "store the schedule again (JobQueue.schedule) or delete the row"
        ) from None


def _notify_finished(conn: psycopg.Connection[Any], records: list[JobRecord]) -> None:
    """Name the jobs of ``records`` that are now finished, for those who wait for them."""
    finished = [r.job_id for r in records if not r.status.is_live]
    if finished:
        notify_finished(conn, finished)


def _of_types(
    types: frozenset[str] | None, every: str, of_types: str
) -> tuple[str, tuple[Any, ...]]:
    """The statement for jobs of any type, or the one for ``types`` with its parameter."""
    if types is None:
        return every, ()
    return of_types, (sorted(types),)


class PostgresJobBackend:
    """Jobs in PostgreSQL; see the module docstring.

    ``PostgresJobBackend(url, fsync=True, clock=None, worker_lease=6.0, heartbeat=None)``:
    ``worker_lease`` is how long (seconds) a worker that stopped renewing counts as alive,
    ``heartbeat`` how often it renews (default: a fifth of the lease), ``reconnect_for``
    how long (seconds) a transaction waits for a lost server to come back (backoff).
    """

    def __init__(
        self,
        url: str,
        *,
        fsync: bool = True,
        clock: Clock | None = None,
        worker_lease: float = DEFAULT_WORKER_LEASE,
        heartbeat: float | None = None,
        connect_timeout: float = 10.0,
        reconnect_for: float = 60.0,
        read_only: bool = False,
    ) -> None:
        if worker_lease <= 0:
            raise ValueError(f"worker_lease must be positive, got {worker_lease!r}")
        # Read only (the queue's reading methods): never migrates, SchemaMissing instead.
        self._db = Database(
            url,
            connect_timeout=connect_timeout,
            reconnect_for=reconnect_for,
            migrate=not read_only,
        )
        self.location = self._db.location
        self._fsync = fsync
        self._clock = clock or SystemClock()
        self.worker_lease = float(worker_lease)
        self.heartbeat = float(heartbeat) if heartbeat is not None else self.worker_lease / 5

    @contextlib.contextmanager
    def _tx(self, action: str, *, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._db.transaction(action, durable=durable and self._fsync) as conn:
            yield conn

    # -- the primitives -------------------------------------------------------------------

    def put(
        self,
        records: list[JobRecord],
        fresh: frozenset[str] = frozenset(),
        *,
        unique_since: str | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """Insert new jobs with fresh ``seq`` values; existing ids are returned as stored
        with False, and an id given twice is stored once. A job whose ``unique_key`` a
        live job holds (or, with ``unique_since``, a job that finished at or after it) is
        not inserted: that job is returned with False; of a batch's jobs with one key, the
        first is stored. A batch whose ids are all ``fresh`` (generated: no stored job can
        have them) goes in by COPY (see ``_copy_new``).

        One job without ``unique_since`` is one statement (``_put_one``): the unique index
        settles a race on its key. With ``unique_since`` the keys are locked first (see
        ``_put_once``).

        A COMMIT of unknown outcome runs it again, which inserts nothing twice (the ids are
        the key); a job found stored with the ``seq`` and ``created`` the lost attempt gave
        it is that attempt's own insert, which landed: returned as new (True)."""
        unique = first_of_each(records)
        if not unique:
            return []
        if (
            len(unique) == 1
            and unique_since is None
            and self._fsync
            and not self._db.in_transaction()
        ):
            stored, new = self._put_one(next(iter(unique.values())))
            return [(stored, new and i == 0) for i in range(len(records))]
        # What the attempt whose COMMIT was cut off inserted (by id), if any.
        lost: list[dict[str, JobRecord]] = []

        def run() -> tuple[dict[str, JobRecord], set[str], dict[str, JobRecord]]:
            with self._tx("enqueue jobs") as conn:
                staged, inserted, existing = put_once(
                    conn, unique, fresh, unique_since, self.location
                )
                settle_lost(lost, staged, inserted, existing)
            return staged, inserted, existing

        staged, inserted, existing = self._db.retrying(run)
        return put_outcomes(records, unique, staged, inserted, existing)

    def _put_one(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """put of one job: ONE statement in autocommit (``q.ENQUEUE_ONE``), its commit
        implicit, so one round trip where a transaction takes four or five (measured:
        enqueue one by one went from 0.3-0.5 of the server's one-row commit rate to
        about 0.9). Durable as the server's ``synchronous_commit`` has it; under
        ``durability="flush"`` put takes the transaction path, which turns it off.

        A statement of unknown outcome (the connection lost while it ran) runs again,
        inserting nothing twice; a stored job with its id is this call's own landed insert
        when it has
        the ``seq`` the lost attempt got back, or, when that answer never came, when it is
        column for column the record sent (``seq`` aside, which the server chose)."""
        doc = Jsonb([doc_of(record)])
        # What the lost attempt knows of its insert: its seq, when the answer came back.
        lost: list[int | None] = []

        def run() -> tuple[JobRecord, bool]:
            while True:
                with self._db.statement("enqueue a job") as conn:
                    first = not lost
                    if first:
                        lost.append(None)  # sent: it may insert, its answer not yet back
                    job_id, key = record.job_id, record.unique_key
                    row = conn.execute(
                        q.ENQUEUE_ONE, (doc, CHANNEL, job_id, key, job_id)
                    ).fetchone()
                    if row is None:  # stored by a commit after this statement's snapshot
                        found = conn.execute(
                            q.GET_JOB_OR_KEY_HOLDER, (job_id, key, job_id)
                        ).fetchone()
                        row = None if found is None else (False, *found)
                    if row is not None and row[0]:
                        lost[:] = [int(row[1 + SEQ])]
                    elif first:
                        lost.clear()  # this attempt inserted nothing
                if row is not None:
                    break
                # Stored by another and deleted since (a prune, a clear): insert it now.
            stored = record_of(row[1:])
            if row[0]:
                return stored, True
            mine = stored.job_id == record.job_id  # not another job holding the key
            return stored, mine and bool(lost) and landed(stored, record, lost[0])

        return self._db.retrying(run)

    # -- schedules ------------------------------------------------------------------------

    @reconnecting
    def schedules(self) -> list[StoredSchedule]:
        """The stored schedules, by name: one query of a small table."""
        with self._tx("read schedules", durable=False) as conn:
            rows = conn.execute(q.SCHEDULES).fetchall()
        return [_schedule_of(name, record) for name, record in rows]

    def change_schedule(
        self,
        name: str,
        change: Callable[[StoredSchedule | None], tuple[StoredSchedule | None, list[JobRecord]]],
    ) -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
        """In one transaction: lock the schedule's row (its name, while it has none),
        ``change`` it, put its jobs and write it. Two workers firing one schedule wait
        for each other, and the second finds ``last`` moved: nothing is due.

        A COMMIT of unknown outcome runs it again: a landed firing leaves nothing due, a
        lost one fires again (its jobs' ids are the occurrences', so a job is never
        stored twice)."""

        def run() -> tuple[StoredSchedule | None, list[tuple[JobRecord, bool]]]:
            with self._tx("change a schedule") as conn:
                conn.execute(q.LOCK_SCHEDULE_NAME, (_SCHEDULE_LOCK, name))
                row = conn.execute(q.LOCK_SCHEDULE, (name,)).fetchone()
                old = None if row is None else _schedule_of(name, row[0])
                new, jobs = change(old)
                stored: list[tuple[JobRecord, bool]] = []
                if jobs:
                    unique = first_of_each(jobs)
                    staged, inserted, existing = put_once(
                        conn, unique, frozenset(), None, self.location
                    )
                    stored = put_outcomes(jobs, unique, staged, inserted, existing)
                if new is None and old is not None:
                    conn.execute(q.DELETE_SCHEDULE, (name,))
                elif new is not None and new != old:
                    conn.execute(q.PUT_SCHEDULE, (name, Jsonb(new.to_json())))
            return new, stored

        return self._db.retrying(run)

    @reconnecting
    def import_records(self, records: list[JobRecord]) -> list[str]:
        """Store ``records`` exactly as given (status, attempts, ``seq``...), for
        ``jobledger export``; ids already stored are left as they are and returned. The job
        sequence is moved past every stored ``seq``, so later enqueues come after them."""
        if not records:
            return []
        with self._tx("import jobs") as conn:
            inserted = insert_new(conn, records)
            conn.execute(q.MOVE_SEQ_PAST_JOBS)
        return [r.job_id for r in records if r.job_id not in inserted]

    @reconnecting
    def get(self, job_id: str) -> JobRecord | None:
        """The stored job (a plain read, no row lock)."""
        if not findable(job_id, "job id"):  # before psycopg could fail to encode it
            return None
        with self._tx("read a job") as conn:
            row = conn.execute(q.GET_JOB, (job_id,)).fetchone()
        return record_of(row) if row is not None else None

    @reconnecting
    def next_seq(self) -> int:
        """A value of the jobs' sequence, above every ``seq`` assigned so far."""
        with self._tx("number a job") as conn:
            row = conn.execute(q.NEXT_SEQ).fetchone()
        assert row is not None
        return int(row[0])

    def claim(
        self,
        worker: str,
        now: str,
        types: frozenset[str] | None,
        limit: int = 1,
        *,
        recover: Recovery | None = None,
    ) -> list[JobRecord]:
        """Make the first ``limit`` due Queued jobs Running under ``worker``: one statement.

        With ``recover`` (``keep``, ``decide``, as :meth:`recover` takes them), the
        Running jobs of a worker whose session ended (its process died: see
        ``_heartbeat.py``) are recovered first, in the same transaction, so that this very
        claim serves them ahead of every Queued job. Asked in the claim's first statement,
        so it costs no round trip while every worker's session lives.

        Durable before it returns (``synchronous_commit`` as the server has it, on by
        default), unlike the files backend's claim: there a claim lost in a power cut went
        with its worker, on the same machine, but a PostgreSQL server can crash while its
        workers live, and a claim it forgot would read Queued and be handed to a second
        worker while the first still ran the job. Under ``durability="flush"`` (``fsync``
        False) the claim, like every write, commits without waiting for the WAL flush, and
        a server crash may forget the claims of its last moments (up to three
        ``wal_writer_delay``, 0.6 s by default) in just that way."""
        statement, params = _of_types(types, q.CLAIM_JOBS, q.CLAIM_JOBS_OF_TYPES)
        done: list[list[JobRecord]] = []

        def run() -> list[JobRecord]:
            done.clear()  # only this attempt's claim may be asked about
            with self._tx("claim jobs") as conn:
                done[:] = [self._claim(conn, worker, now, statement, params, limit, recover)]
            return done[0]

        def settled() -> list[JobRecord] | None:
            # Asked of the rows, not of txid_status: a server that crashed during the
            # COMMIT forgets the transaction's xid with it and hands that xid to a new
            # transaction, whose commit would then read as this claim's.
            if not done:
                return None
            return self._still_claimed(done[0], worker) or None  # None: claim again

        return self._db.retrying(run, settled)

    def _still_claimed(self, records: list[JobRecord], worker: str) -> list[JobRecord]:
        """Those of a claim's ``records`` that are Running under ``worker`` from that very
        claim (same attempt, same start): all of them if its COMMIT landed, none if it did
        not. ``FOR SHARE`` waits for a transaction still finishing (a cut network, not a
        restart) to end, so that its outcome is read, not the rows before it."""
        if not records:
            return []

        def read() -> set[tuple[str, int, str | None]]:
            with self._tx("read a claim's outcome") as conn:
                rows = conn.execute(q.CLAIMED_BY, ([r.job_id for r in records], worker)).fetchall()
            return {(job_id, attempts, started) for job_id, attempts, started in rows}

        found = self._db.retrying(read)
        return [r for r in records if (r.job_id, r.attempts, r.started) in found]

    def _claim(
        self,
        conn: psycopg.Connection[Any],
        worker: str,
        now: str,
        statement: str,
        params: tuple[Any, ...],
        limit: int,
        recover: Recovery | None,
    ) -> list[JobRecord]:
        """claim's one statement (``statement``, of ``q.CLAIM_JOBS`` or
        ``q.CLAIM_JOBS_OF_TYPES``, with ``params`` the types): the records claimed, in
        serving order."""
        # Read the serving order from its index, never sort every Queued job: a table just
        # filled and not yet analyzed makes the planner expect one Queued row and sort
        # (18-20 ms per 100-job claim with 20,000 queued, against 1 ms; bench.pg). Only
        # this transaction's planning is affected.
        setup = conn.execute(q.CLAIM_SETUP).fetchone()
        if recover is not None and setup is not None and setup[1]:
            self._recover(conn, *recover)
        rows = conn.execute(
            statement, (now, *params, limit, worker, now, self.worker_lease)
        ).fetchall()
        return sorted(map(record_of, rows), key=lambda r: (not r.recovered, -r.priority, r.seq))

    def transition(
        self, job_id: str, change: Callable[[JobRecord], JobRecord], *, fsync: bool = True
    ) -> JobRecord:
        """Lock the job's row, apply ``change``, write it: one transaction. ``change`` may
        raise to refuse; then nothing is written. (:meth:`transition_many` of one.)"""
        [outcome] = self.transition_many([(job_id, change)], fsync=fsync)
        if isinstance(outcome, JobLedgerError):
            raise outcome
        return outcome

    def transition_many(
        self,
        changes: list[tuple[str, Callable[[JobRecord], JobRecord]]],
        *,
        fsync: bool = True,
    ) -> list[JobRecord | JobLedgerError]:
        """:meth:`transition` for each, in one transaction: the rows are locked in one
        statement (in job id order, so two batches never deadlock) and written in one."""
        # An id no row can hold is not sent (psycopg could not encode it): it is not found.
        ids = sorted({job_id for job_id, _ in changes if findable(job_id, "job id")})
        # The attempt whose COMMIT was cut off, if any: its outcomes (one per change) and
        # the records it wrote (by id). Each run is a new attempt.
        lost: list[tuple[list[JobRecord | JobLedgerError], dict[str, JobRecord]]] = []

        def run() -> list[JobRecord | JobLedgerError]:
            out: list[JobRecord | JobLedgerError] = []
            with self._tx("change jobs", durable=fsync) as conn:
                rows = conn.execute(q.LOCK_JOBS, (ids,)).fetchall()
                current = {r.job_id: r for r in map(record_of, rows)}
                # A row found, under its lock, as the lost attempt wrote it: that COMMIT
                # landed (for this row at least), and its outcome stands. Asked of the rows,
                # not of txid_status (see _db): change is never applied to its own result.
                landed = {
                    job_id: new
                    for job_id, new in (lost[0][1] if lost else {}).items()
                    if job_id in current and same(current[job_id], new)
                }
                changed: dict[str, tuple[JobRecord, JobRecord]] = {}
                for i, (job_id, change) in enumerate(changes):
                    if job_id in landed:
                        out.append(lost[0][0][i])
                        continue
                    record = current.get(job_id)
                    if record is None:
                        out.append(JobNotFound(job_id, self.location))
                        continue
                    try:
                        new = change(record)
                    except JobLedgerError as exc:
                        out.append(exc)
                        continue
                    current[job_id] = new
                    if new is not record:
                        first = changed.get(job_id, (record, new))[0]
                        changed[job_id] = (first, new)
                    out.append(new)
                refuse_taken_keys(conn, changed, changes, out, self.location)
                if changed:
                    try:
                        self._write_many(conn, list(changed.values()))
                    except psycopg.errors.UniqueViolation as exc:
                        # Another transaction made a job with the key live meanwhile.
                        raise key_taken_conflict(sorted(changed), None, self.location) from exc
                    if any(new.status is JobStatus.QUEUED for _, new in changed.values()):
                        notify(conn)
                    if any(
                        new.cancel_requested_at is not None and old.cancel_requested_at is None
                        for old, new in changed.values()
                    ):
                        notify(conn, CANCEL_CHANNEL)  # its worker stops it
                    _notify_finished(conn, [new for _, new in changed.values()])
                wrote = landed | {job_id: new for job_id, (_, new) in changed.items()}
                lost[:] = [(out, wrote)]  # if this COMMIT is cut off in its turn
            return out

        return self._db.retrying(run)

    def _write_many(
        self, conn: psycopg.Connection[Any], pairs: list[tuple[JobRecord, JobRecord]]
    ) -> None:
        """Write the new records of (old, new) pairs in one statement, only the columns
        that changed in any of them: a completion then sends and rewrites its status,
        times and result, not the payload (which PostgreSQL then keeps as it is)."""
        columns = tuple(
            c
            for c in q.WRITABLE
            if any(
                (a := getattr(old, c)) is not (b := getattr(new, c)) and a != b
                for old, new in pairs
            )
        )
        if not columns:
            return
        docs = []
        for _, new in pairs:
            doc = doc_of(new)
            docs.append({c: doc[c] for c in ("job_id", *columns)})
        conn.execute(q.update_jobs(columns), (Jsonb(docs),))

    @reconnecting
    def recover(
        self, keep: Callable[[str | None], bool], decide: Callable[[JobRecord], JobRecord]
    ) -> list[JobRecord]:
        """Store ``decide(job)`` for every Running job whose worker's lease ran out (or
        has no row, or whose session ended), unless ``keep(worker)``; forget the dead
        workers' rows."""
        with self._tx("recover the jobs of dead workers") as conn:
            return self._recover(conn, keep, decide)

    def _recover(
        self,
        conn: psycopg.Connection[Any],
        keep: Callable[[str | None], bool],
        decide: Callable[[JobRecord], JobRecord],
    ) -> list[JobRecord]:
        """:meth:`recover`'s work, in the caller's transaction."""
        rows = conn.execute(q.RECOVERABLE_JOBS).fetchall()
        pairs = []
        for record in map(record_of, rows):
            if keep(record.worker):
                continue
            pairs.append((record, decide(record)))
        out = [new for _, new in pairs]
        if pairs:
            self._write_many(conn, pairs)
            if any(r.status is JobStatus.QUEUED for r in out):
                notify(conn)
            _notify_finished(conn, out)
        conn.execute(q.DELETE_DEAD_WORKERS)
        # A kept worker's row stays: that is this process's own worker, whose heartbeat
        # takes its lock again on its next session.
        gone = [w for (w,) in conn.execute(q.SESSIONLESS_WORKERS) if not keep(w)]
        if gone:
            conn.execute(q.DELETE_SESSIONLESS_WORKERS, (gone,))
        return out

    # -- reading --------------------------------------------------------------------------

    @reconnecting
    def live(self, status: JobStatus | None = None) -> list[JobRecord]:
        """Live jobs in serving order: Running first, then Queued (or only ``status``)."""
        wanted = [status.value] if status is not None else ["Running", "Queued"]
        with self._tx("list jobs") as conn:
            rows = conn.execute(q.LIVE_JOBS, (wanted,)).fetchall()
        return [record_of(r) for r in rows]

    @reconnecting
    def all_records(self) -> Iterator[JobRecord]:
        """Every job, history included, in ``seq`` order."""
        with self._tx("list jobs") as conn:
            rows = conn.execute(q.JOBS_IN_SEQ_ORDER).fetchall()
        return map(record_of, rows)

    @reconnecting
    def counts(self) -> dict[str, int]:
        """Jobs per status (every status present, zeros included)."""
        out = {s.value: 0 for s in JobStatus}
        with self._tx("count jobs") as conn:
            for status, n in conn.execute(q.COUNT_BY_STATUS):
                out[status] = int(n)
        return out

    @reconnecting
    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of ``types``), due or not."""
        statement, params = _of_types(types, q.COUNT_QUEUED, q.COUNT_QUEUED_OF_TYPES)
        with self._tx("count jobs") as conn:
            row = conn.execute(statement, params).fetchone()
        return int(row[0]) if row else 0

    @reconnecting
    def queued_by_type(self, now: str) -> dict[str, QueuedCounts]:
        """The Queued jobs per type, due or not at ``now``: one aggregate query."""
        with self._tx("count jobs") as conn:
            rows = conn.execute(q.QUEUED_BY_TYPE, (now, now, now)).fetchall()
        return {t: QueuedCounts(int(due), int(later), nxt) for t, due, later, nxt in rows}

    @reconnecting
    def prune(self, cutoff: str) -> int:
        """Delete finished jobs whose ``finished`` is before ``cutoff``; how many."""
        with self._tx("prune jobs") as conn:
            cur = conn.execute(q.PRUNE_JOBS, (_FINISHED, cutoff))
            return cur.rowcount

    # -- workers --------------------------------------------------------------------------

    def register_worker(self, worker: str, since: str) -> WorkerLease:
        """Write the worker's row and start its heartbeat; released when it stops."""
        self._db.ensure_schema()  # the tables exist before the heartbeat writes
        return WorkerLease(self._db, worker, since, self.worker_lease, self.heartbeat)

    @reconnecting
    def worker_alive(self, worker: str) -> bool:
        """Whether ``worker``'s lease has not run out."""
        with self._tx("read workers") as conn:
            row = conn.execute(q.WORKER_ALIVE, (worker,)).fetchone()
        return bool(row and row[0])

    @reconnecting
    def live_workers(self) -> list[str]:
        """The workers whose lease has not run out, sorted."""
        with self._tx("read workers") as conn:
            rows = conn.execute(q.LIVE_WORKERS).fetchall()
        return [r[0] for r in rows]

    @reconnecting
    def clear(self) -> int:
        """Delete every job; refuse while any worker's lease is live."""
        with self._tx("clear the queue") as conn:
            # Registrations wait until this transaction ends, so none slips in between.
            conn.execute(q.LOCK_WORKERS)
            alive = [r[0] for r in conn.execute(q.LIVE_WORKERS)]
            if alive:
                raise JobLedgerError(
                    f"refusing to clear the queue in {self.location}: worker(s) "
                    f"{', '.join(alive)} are alive. Stop them first (the queue may be "
                    "cleared only when no worker runs)."
                )
            n = conn.execute(q.CLEAR_JOBS).rowcount
            conn.execute(q.CLEAR_WORKERS)
        return n

    def watch(
        self, callback: Callable[[], None], *, on_cancel: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` when jobs may have become claimable, and ``on_cancel`` when a
        Running job's cancel was asked (LISTEN/NOTIFY on one session of its own; see
        ``_listen.py``); returns the function that stops it."""
        return Listener(self._db, callback, on_cancel).stop

    @reconnecting
    def cancel_requests(self, job_ids: list[str]) -> set[str]:
        """Those of ``job_ids`` Running with a cancel request: one query."""
        ids = [job_id for job_id in job_ids if findable(job_id, "job id")]
        if not ids:
            return set()
        with self._tx("look for cancel requests", durable=False) as conn:
            rows = conn.execute(q.CANCEL_REQUESTED, (ids,)).fetchall()
        return {row[0] for row in rows}

    def watch_finished(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(job_id)`` when a job finishes, in any process (LISTEN on the
        finished jobs' channel, a session of its own; ``callback(None)``: any job may have,
        read again); returns the function that stops it."""
        return FinishListener(self._db, callback).stop

    def checkpoint(self) -> None:
        """Nothing to do: there is no derived index."""

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        self._db.close()
