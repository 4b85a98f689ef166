"""The job queue in PostgreSQL: ``jobledger_jobs``, ``jobledger_workers`` and a sequence.

- ``claim`` is ONE statement in autocommit: an UPDATE of the rows picked, in serving
  order, by a subquery with FOR UPDATE SKIP LOCKED. Concurrent claimers skip each other's
  rows instead of waiting: one winner per job, and no claimer ever blocks on another.
  ``swap`` (a worker's completion, failure or requeue of the job it claimed) is ONE
  guarded UPDATE, and ``swap_and_claim`` the two in one statement (``_claims.py``).
- ``transition`` and ``recover`` lock the rows (SELECT ... FOR UPDATE), let the policy
  compute the new records in Python, and write them, in one transaction.
- ``put`` is INSERT ... ON CONFLICT DO NOTHING: enqueueing an existing id writes nothing
  and returns the stored job (idempotent enqueue). A batch of generated ids, which no
  stored job can have, goes in by COPY instead, a third of the server's work, in four
  round trips and the commit: BEGIN, the seqs with the NOTIFY (one statement), the COPY's
  start and its rows (each row made as the server takes the ones before). One job (at
  durability "fsync") is ONE statement in autocommit, its seq, NOTIFY and the read of an
  existing id included: one round trip (``_put_one``).
- ``put_in_transaction`` inserts with the caller's own connection, in the caller's
  transaction (``enqueue(..., connection=)``), by the same statements (``_joined.py``).
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
  landed insert, returned as new; ``claim`` reads its rows back: those Running under this
  worker from that very claim (since its start, and not handed out by an earlier claim)
  are its result (so a claim that landed is never followed by a second one, leaving the
  first Running under this live worker, run by no one); none, and it runs again; a
  ``swap``'s rows found as it would have written them are its landed writes (see
  ``_claims.py``). ``transition`` runs again, and
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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._clock import Clock, SystemClock
from ..._enqueue import LazyRecords, key_taken_conflict
from ..._errors import JobLedgerError, JobNotFound
from ..._inputs import findable
from ..._job_record import JobRecord, JobStatus
from .._contract import Recovery
from . import _queries as q
from ._claims import OneStatement
from ._db import Database, reconnecting
from ._job_reads import JobReads
from ._job_schedules import JobSchedules
from ._joined import CallerTransactions
from ._limited import JobLimits
from ._listen import CANCEL_CHANNEL, CHANNEL, notify, notify_finished
from ._put import (
    ONE_STORED_AGAIN,
    StoredAfterAll,
    blocks_for,
    copy_staged,
    first_of_each,
    insert_new,
    one_args,
    one_outcome,
    one_sent,
    put_once,
    put_outcomes,
    refuse_taken_keys,
    seqs_of,
    settle_lost,
)
from ._rows import doc_of, record_of, same

__all__ = ["PostgresJobBackend"]

log = logging.getLogger("jobledger")

# Seconds a worker that stopped renewing counts as alive. Short enough that a dead
# machine's jobs run again within 10 s (the lease plus a live worker's recover_every of
# 2 s), long enough to ride out a few missed heartbeats (one every lease / 5 seconds).
DEFAULT_WORKER_LEASE = 6.0
#: The most finished jobs one batch of ``prune`` deletes, each batch its own transaction:
#: about 5 ms of the server's time for 2,000 rows (a million in the table, 2 idle cores;
#: 10-15 ms beside a busy worker: ``python -m bench.pg --scale``), so that a prune of any
#: size runs beside the workers.
PRUNE_BATCH = 2000
#: After each batch, ``prune`` pauses this many times as long as the batch took.
PRUNE_PAUSE = 1.0
# Batches of at least this many new jobs go in by COPY: its start and its savepoint are
# round trips of their own (measured: 20 rows cost the same either way, 50 a sixth less
# by COPY).
_COPY_FROM = 32


def _session_settings(fsync: bool) -> dict[str, str]:
    """The settings of the backend's own connection (see ``_queries.SESSION_SETTINGS``).

    ``enable_sort`` off: a claim reads the serving order from its index, never sorting
    every Queued job. A table just filled and not yet analyzed makes the planner expect one
    Queued row and sort them all (18-20 ms per 100-job claim with 20,000 queued, against
    1 ms; bench.pg). Set for the connection, not per claim: a claim is one autocommit
    statement, and a statement cannot change its own planning. The backend's other
    statements either read an index in the order they ask or sort all the same (there is
    no other way): only their cost estimate grows, by the planner's "disabled" 10^10.
    ``jit`` off, because of that estimate: far above ``jit_above_cost``, it would have
    every such statement compiled (60-100 ms for a list of ten jobs, against 1 ms).
    ``synchronous_commit`` off under ``durability="flush"``: the one-statement writes have
    no transaction to set it in."""
    settings = {"enable_sort": "off", "jit": "off"}
    if not fsync:
        settings["synchronous_commit"] = "off"
    return settings


def _notify_finished(conn: psycopg.Connection[Any], records: list[JobRecord]) -> None:
    """Name the jobs of ``records`` that are now finished, for those who wait for them."""
    finished = [r.job_id for r in records if not r.status.is_live]
    if finished:
        notify_finished(conn, finished)


class PostgresJobBackend(JobLimits, JobSchedules, JobReads):
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
            settings=_session_settings(fsync),
        )
        self.location = self._db.location
        self._joined = CallerTransactions(self._db)
        self._fsync = fsync
        self._clock = clock or SystemClock()
        self.worker_lease = float(worker_lease)
        self.heartbeat = float(heartbeat) if heartbeat is not None else self.worker_lease / 5
        self._one = OneStatement(self._db, self.worker_lease, fsync, self._recover)
        #: The most jobs one batch of :meth:`prune` deletes.
        self.prune_batch = PRUNE_BATCH
        #: How long :meth:`prune` pauses after a batch, as a multiple of the batch's time.
        self.prune_pause = PRUNE_PAUSE

    @contextlib.contextmanager
    def _tx(self, action: str, *, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._db.transaction(action, durable=durable and self._fsync) as conn:
            yield conn

    # -- the primitives -------------------------------------------------------------------

    def put(
        self,
        records: Sequence[JobRecord],
        fresh: frozenset[str] = frozenset(),
        *,
        unique_since: str | None = None,
    ) -> list[tuple[JobRecord, bool]]:
        """Insert new jobs with fresh ``seq`` values; existing ids are returned as stored
        with False, and an id given twice is stored once. A job whose ``unique_key`` a
        live job holds (or, with ``unique_since``, a job that finished at or after it) is
        not inserted: that job is returned with False; of a batch's jobs with one key, the
        first is stored. A batch whose ids are all ``fresh`` (generated: no stored job can
        have them) and that has no key goes in by COPY (see ``_put.copy_staged``), its records
        read (and, built on first use, built) as they are sent.

        One job without ``unique_since`` is one statement (``_put_one``): the unique index
        settles a race on its key. With ``unique_since`` the keys are locked first (see
        ``_put.put_once``).

        A COMMIT of unknown outcome runs it again, which inserts nothing twice (the ids are
        the key); a job found stored with the ``seq`` and ``created`` the lost attempt gave
        it is that attempt's own insert, which landed: returned as new (True)."""
        # By COPY: a batch of generated ids (``fresh`` names only ids of these records, so
        # as many as there are records means all of them, none twice) without a key (a
        # lazily built batch never has one), not after an attempt that may have landed.
        copy = [
            len(records) >= _COPY_FROM
            and len(fresh) == len(records)
            and unique_since is None
            and (isinstance(records, LazyRecords) or all(r.unique_key is None for r in records))
        ]
        unique: dict[str, JobRecord] = {}  # for the general way; made when it is taken

        def by_id() -> dict[str, JobRecord]:
            if not unique:
                unique.update(first_of_each(list(records)))
            return unique

        if not copy[0]:
            if not by_id():
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
            if copy[0] and not lost:
                try:
                    with self._tx("enqueue jobs") as conn:
                        staged = self._put_copy(conn, records)
                        lost[:] = [staged]
                    return staged, set(staged), {}
                except StoredAfterAll:
                    lost.clear()  # rolled back: nothing of it landed
                    copy[0] = False
            with self._tx("enqueue jobs") as conn:
                staged, inserted, existing = put_once(
                    conn, by_id(), fresh, unique_since, self.location
                )
                settle_lost(lost, staged, inserted, existing)
            return staged, inserted, existing

        staged, inserted, existing = self._db.retrying(run)
        if len(inserted) == len(records):  # every one new, none given twice: in order
            return [(record, True) for record in staged.values()]
        return put_outcomes(list(records), by_id(), staged, inserted, existing)

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
        args = one_args(Jsonb([doc_of(record)]), record)
        # What the lost attempt knows of its insert: its seq, when the answer came back.
        lost: list[int | None] = []

        def run() -> tuple[JobRecord, bool]:
            while True:
                with self._db.statement("enqueue a job") as conn:
                    first = not lost
                    if first:
                        lost.append(None)  # sent: it may insert, its answer not yet back
                    row = conn.execute(q.ENQUEUE_ONE, args).fetchone()
                    if row is None:  # stored by a commit after this statement's snapshot
                        found = conn.execute(ONE_STORED_AGAIN, args[2:]).fetchone()
                        row = None if found is None else (False, *found)
                    one_sent(row, lost, first)
                if row is not None:
                    break
                # Stored by another and deleted since (a prune, a clear): insert it now.
            return one_outcome(row, record, lost)

        return self._db.retrying(run)

    # -- schedules ------------------------------------------------------------------------

    @staticmethod
    def _put_copy(
        conn: psycopg.Connection[Any], records: Sequence[JobRecord]
    ) -> dict[str, JobRecord]:
        """put's statements for a batch of generated ids: the seqs and the wake-up in one
        statement (every row goes in, or none: the NOTIFY is sent only by the commit), then
        the COPY. The records staged, by id."""
        n = len(records)
        blocks = conn.execute(q.NEXT_SEQ_BLOCKS_WAKE, (CHANNEL, blocks_for(n))).fetchall()
        return copy_staged(conn, records, seqs_of(blocks, n))

    def put_in_transaction(
        self,
        connection: object,
        records: Sequence[JobRecord],
        fresh: frozenset[str] = frozenset(),
    ) -> list[tuple[JobRecord, bool]]:
        """:meth:`put` on the caller's psycopg ``connection``, inside the caller's
        transaction: stored, and its workers woken, if and only if that transaction
        commits. Never retried: a lost connection took the caller's transaction with it.
        A batch goes in by the INSERT that skips stored ids (no COPY: a COPY that met a
        stored id would abort the caller's transaction up to its savepoint, and run again
        the general way anyway). See ``_joined.py``."""
        return self._joined.put(
            connection,
            list(records),
            fresh,
            lambda conn, unique, fresh: put_once(conn, unique, fresh, None, self.location),
        )

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
        queues: frozenset[str] | None = None,
    ) -> list[JobRecord]:
        """Make the first ``limit`` due Queued jobs Running under ``worker``: ONE statement
        in autocommit (``q.claim_next``), one round trip (see ``_claims.py``).

        With ``recover`` (``keep``, ``decide``, as :meth:`recover` takes them), the
        Running jobs of a worker whose session ended (its process died: see
        ``_heartbeat.py``) are recovered first, so that this very claim serves them ahead
        of every Queued job: the statement, which asks, then claims nothing, and the claim
        is made again in a transaction that recovers first. So it costs no round trip
        while every worker's session lives.

        Durable before it returns (``synchronous_commit`` as the server has it, on by
        default), unlike the files backend's claim: there a claim lost in a power cut went
        with its worker, on the same machine, but a PostgreSQL server can crash while its
        workers live, and a claim it forgot would read Queued and be handed to a second
        worker while the first still ran the job. Under ``durability="flush"`` (``fsync``
        False) the claim, like every write, commits without waiting for the WAL flush, and
        a server crash may forget the claims of its last moments (up to three
        ``wal_writer_delay``, 0.6 s by default) in just that way.

        Of ``queues`` (None: any). Under a stored limit of one of its queues or types,
        the claim is a transaction that obeys it (``_limited.py``); otherwise the one
        statement, which claims nothing when the limits changed since this object read
        them (then read again)."""
        return self._one.swap_and_claim([], worker, now, types, limit, recover, queues)[1]

    def swap(self, pairs: list[tuple[JobRecord, JobRecord]]) -> list[JobRecord | None]:
        """Write each pair's new record where its job is still the claim paired with it
        (Running under the same worker, attempt and start): ONE guarded UPDATE in
        autocommit (``q.swap_job``, ``q.swap_jobs``). The new record where written, None
        where not."""
        return self._one.swap(pairs)

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
        """:meth:`swap` and :meth:`claim` in ONE statement (``q.swap_job(s)_and_claim``): a
        Worker's completions recorded with its next claim, one round trip."""
        return self._one.swap_and_claim(pairs, worker, now, types, limit, recover, queues)

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
            with self._db.lock:  # with what is noted of the claims written over
                return attempt()

        def attempt() -> list[JobRecord | JobLedgerError]:
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
            # Claims handed out here and now written over: a later claim may take these
            # jobs again at the same time, and a read-back of it must then find them.
            self._one.handed.forget([first for first, _ in changed.values()])
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

    def checkpoint(self) -> None:
        """Nothing to do: there is no derived index."""

    def close(self) -> None:
        """Close the connection (reopened on next use)."""
        self._db.close()
