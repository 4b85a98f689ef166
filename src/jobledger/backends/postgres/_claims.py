"""A worker's own writes as ONE statement each: claim, swap, and the two together.

A claim, the completion or failure of a job the worker claimed (``swap``), and a batch of
completions recorded with the next claim (``swap_and_claim``, the Worker's group commit)
are each one autocommit statement (``_queries.claim_next``, ``swap_job(s)``,
``swap_job(s)_and_claim``): one round trip, the COMMIT implicit, where a transaction
takes three or four (BEGIN, its statements, COMMIT). A job claimed and completed so costs
two durable commits, the least it can.

- A claim statement claims nothing while some worker's session has ended (its process
  died: see ``_heartbeat.py``) and says so: that worker's Running jobs must be recovered
  first, to be served ahead of every Queued job, which takes the policy's ``decide`` in
  Python, so the caller then recovers and claims in one transaction, as before.
- A swap writes a job's new record only where the stored row is still the claim the
  caller holds (Running, same worker, attempt and start): the fencing. Where it is not,
  nothing is written and the caller learns it (None), and takes the locking path
  (``transition_many``), which says why (JobConflict, JobNotFound...).

A statement whose connection was lost while it ran (a server restart) has an unknown
outcome, settled by reading rows back, never by ``txid_status`` (see ``_db.py``):

- a swap's rows found as it would have written them (``same``) are its landed writes;
- a claim's jobs are those Running under the worker since the claim's ``now`` that no
  earlier claim of this object handed out (``Handed``: two claims may share a ``now``
  under a coarse or injected clock); ``FOR SHARE`` waits for a statement still running.

The statement is atomic: anything of it found means all of it landed, and that is its
result; nothing found, and it runs again (which, had it landed having written nothing,
is harmless).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._job_fields import FIELDS
from ..._job_record import JobRecord
from ..._limits import Limits
from .._contract import Recovery
from .._swap import each_once
from . import _queries as q
from ._db import Database
from ._limited import Known, LimitsChanged, claim_limited, read_limits
from ._listen import CHANNEL
from ._rows import doc_of, record_of, same

__all__ = ["Handed", "OneStatement", "Pairs", "serving_order"]

#: (the claimed record the caller holds, the record to write in its place) per job.
Pairs = list[tuple[JobRecord, JobRecord]]
#: The backend's recovery, in the caller's transaction: (connection, keep, decide).
RecoverIn = Callable[
    [psycopg.Connection[Any], Callable[[str | None], bool], Callable[[JobRecord], JobRecord]],
    list[JobRecord],
]
# Where a claimed job's id is among a row's columns (None in a row without a claim).
_JOB_ID = q.COLUMNS.index("job_id")
_JSONB = frozenset(f.name for f in FIELDS if f.pg_type == "jsonb")
# How many distinct claim times ``Handed`` remembers: it matters only for claims that
# share their ``now`` (a frozen clock), and those are the latest.
_KEEP = 64


def serving_order(records: list[JobRecord]) -> list[JobRecord]:
    """``records`` in serving order (a statement returns its rows in no set order)."""
    return sorted(records, key=lambda r: (not r.recovered, -r.priority, r.seq))


class Handed:
    """The claims this backend object handed out, by (worker, ``now``), while their jobs
    may still be Running from them: what a lost claim statement's read-back must not take
    for its own. Forgotten once this object writes such a job (a completion, a requeue),
    so that the same job claimed again at the same ``now`` is found. Used under the
    Database's lock."""

    def __init__(self) -> None:
        self._claims: OrderedDict[tuple[str, str], set[tuple[str, int, int]]] = OrderedDict()

    def add(self, records: list[JobRecord]) -> None:
        """Note claimed records as handed out."""
        for r in records:
            key = (r.worker or "", r.started or "")
            self._claims.setdefault(key, set()).add((r.job_id, r.attempts, r.seq))
            self._claims.move_to_end(key)
        while len(self._claims) > _KEEP:
            self._claims.popitem(last=False)

    def forget(self, records: list[JobRecord]) -> None:
        """Running records this object has just written over."""
        for r in records:
            held = self._claims.get((r.worker or "", r.started or ""))
            if held is not None:
                held.discard((r.job_id, r.attempts, r.seq))

    def new(self, records: list[JobRecord]) -> list[JobRecord]:
        """Those of ``records`` (read back) that no claim handed out."""
        return [
            r
            for r in records
            if (r.job_id, r.attempts, r.seq)
            not in self._claims.get((r.worker or "", r.started or ""), ())
        ]


def _swap_params(pairs: Pairs) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The columns a swap writes (those that differ in any pair: a completion sends its
    status, times and result, never the payload, which PostgreSQL then keeps as it is)
    and its parameters (see ``_queries._swapped``): one job's as parameters, many as a
    JSON array in job id order and their ids."""
    changed: set[str] = set()
    for old, new in pairs:  # field by field, as a claim and a completion make two per job
        was, now = old.__dict__, new.__dict__
        changed.update(c for c in q.WRITABLE if (a := was[c]) is not (b := now[c]) and a != b)
    columns = tuple(c for c in q.WRITABLE if c in changed) or ("status",)
    if len(pairs) == 1:
        [(old, new)] = pairs
        doc = doc_of(new)
        values = [_value(c, doc[c]) for c in columns]
        return columns, (*values, old.job_id, old.worker, old.attempts, old.started)
    docs = []
    ids = []
    for old, new in sorted(pairs, key=lambda p: p[0].job_id):
        doc = doc_of(new)
        row = {c: doc[c] for c in ("job_id", *columns)}
        row.update(was_worker=old.worker, was_attempts=old.attempts, was_started=old.started)
        docs.append(row)
        ids.append(old.job_id)
    return columns, (Jsonb(docs), ids)


def _value(column: str, value: Any) -> Any:
    """A column's JSON value as a parameter (a jsonb column's JSON null is SQL NULL, as
    ``jsonb_to_recordset`` reads it)."""
    return Jsonb(value) if value is not None and column in _JSONB else value


class OneStatement:
    """claim, swap and swap_and_claim of one ``PostgresJobBackend``: see the module
    docstring. ``recover_in`` is the backend's recovery, run in the transaction of a claim
    made after a worker's session ended."""

    def __init__(self, db: Database, lease: float, fsync: bool, recover_in: RecoverIn) -> None:
        self._db = db
        self._lease = lease
        self._fsync = fsync
        self._recover_in = recover_in
        self.handed = Handed()
        #: The limits this object knows (``_limited.py``), read on its first claim.
        self.known = Known()

    def swap(self, pairs: Pairs) -> list[JobRecord | None]:
        """Write each new record where its job is still the claim paired with it: one
        statement. The new record where written, else None (nothing written)."""
        each_once(pairs)
        if not pairs:
            return []
        columns, params = _swap_params(pairs)
        statement = q.swap_job(columns) if len(pairs) == 1 else q.swap_jobs(columns)

        def run() -> list[JobRecord | None]:
            with self._db.lock:
                with self._db.statement("record the outcome of jobs") as conn:
                    written = {row[0] for row in conn.execute(statement, (*params, CHANNEL))}
                return self._written(pairs, written)

        def settled() -> list[JobRecord | None] | None:
            with self._db.lock:
                landed = self._landed(pairs)
                return self._written(pairs, landed) if landed else None

        return self._db.retrying(run, settled)

    def swap_and_claim(
        self,
        pairs: Pairs,
        worker: str,
        now: str,
        types: frozenset[str] | None,
        limit: int,
        recover: Recovery | None,
        queues: frozenset[str] | None = None,
    ) -> tuple[list[JobRecord | None], list[JobRecord]]:
        """:meth:`swap`, then a claim as the backend's ``claim`` makes it, in one
        statement; when a worker's session has ended, the claim is made afterwards by
        ``recovering`` (which recovers that worker's jobs first). With a limit to obey
        (of ``queues`` or ``types``), the swap is its own statement and the claim a
        transaction under the limits (``_limited.py``)."""
        each_once(pairs)
        limits = self.known.limits
        if (limits.queues or limits.rates) and any(limits.applying(queues, types)):
            outcomes = self.swap(pairs) if pairs else []
            limited = self._limited(worker, now, types, queues, limit, recover)
            if limited is not None:
                return outcomes, limited
            return outcomes, self.swap_and_claim([], worker, now, types, limit, recover, queues)[1]
        filters: tuple[Any, ...] = tuple(sorted(x) for x in (types, queues) if x is not None)
        claim_params = (now, *filters, self.known.version, worker, now, self._lease)
        if pairs:
            columns, swap_params = _swap_params(pairs)
            both = q.swap_job_and_claim if len(pairs) == 1 else q.swap_jobs_and_claim
            statement = both(columns, types is not None, limit, queues is not None)
            params: tuple[Any, ...] = (*swap_params, CHANNEL, *claim_params)
        else:
            statement = q.claim_next(types is not None, limit, queues is not None)
            params = claim_params
        # Before the claim's columns: whether a session ended, the limits' version, then
        # (with pairs) the ids written and whether a wake-up was sent.
        skip = 4 if pairs else 2

        def run() -> tuple[list[JobRecord | None], list[JobRecord], bool, int | None]:
            with self._db.lock:
                with self._db.statement("claim jobs") as conn:
                    rows = conn.execute(statement, params).fetchall()
                gone, version = bool(rows[0][0]), rows[0][1]
                written = set(rows[0][2] or ()) if pairs else set()
                claimed = [record_of(r[skip:]) for r in rows if r[skip + _JOB_ID] is not None]
                claimed = serving_order(claimed)
                self.handed.add(claimed)
                return self._written(pairs, written), claimed, gone, version

        def settled() -> tuple[list[JobRecord | None], list[JobRecord], bool, int | None] | None:
            with self._db.lock:
                landed = self._landed(pairs)
                claimed = self._claimed_at(worker, now)
                if not landed and not claimed:
                    return None  # it did not land (or wrote nothing): run it again
                self.handed.add(claimed)
                return self._written(pairs, landed), claimed, False, self.known.version

        outcomes, claimed, gone, version = self._db.retrying(run, settled)
        if version is not None and version != self.known.version:
            # Limits changed: nothing was claimed; claim again under what is stored now.
            self.read_limits()
            return outcomes, self.swap_and_claim([], worker, now, types, limit, recover, queues)[1]
        if gone:
            claimed = self._recovering(worker, now, types, limit, recover, queues)
        return outcomes, claimed

    def read_limits(self) -> None:
        """Read the stored limits and their version into :attr:`known`."""

        def read() -> tuple[int, Limits]:
            with self._db.transaction("read the limits", durable=False) as conn:
                return read_limits(conn)

        self.known.set(*self._db.retrying(read))

    def _limited(
        self,
        worker: str,
        now: str,
        types: frozenset[str] | None,
        queues: frozenset[str] | None,
        limit: int,
        recover: Recovery | None,
    ) -> list[JobRecord] | None:
        """A claim under limits, one transaction (``_limited.claim_limited``); None when
        no limit applies any more."""
        recovering = (self._recover_in, recover) if recover is not None else None

        def claim(conn: psycopg.Connection[Any]) -> list[JobRecord]:
            return claim_limited(
                conn, self.known, worker, now, types, queues, limit, self._lease, recovering
            )

        try:
            return self._claim_in_transaction(claim, worker)
        except LimitsChanged:
            return None

    def _recovering(
        self,
        worker: str,
        now: str,
        types: frozenset[str] | None,
        limit: int,
        recover: Recovery | None,
        queues: frozenset[str] | None = None,
    ) -> list[JobRecord]:
        """A claim after a worker's session ended: that worker's Running jobs recovered
        with ``recover``, then the claim (``q.claim_jobs``), in one transaction, so that it
        serves them first. A COMMIT of unknown outcome is settled by reading the claimed
        rows back (:meth:`_still_claimed`). The limits' version is read first: changed,
        the claim is made again under the limits stored now."""
        statement = q.claim_jobs(types is not None, queues is not None)
        filters: tuple[Any, ...] = tuple(sorted(x) for x in (types, queues) if x is not None)
        params = (now, *filters, limit, worker, now, self._lease)

        def claim(conn: psycopg.Connection[Any]) -> list[JobRecord]:
            row = conn.execute(q.LIMITS_VERSION).fetchone()
            if row is None or row[0] != self.known.version:
                raise LimitsChanged
            if recover is not None:
                self._recover_in(conn, *recover)
            return list(map(record_of, conn.execute(statement, params).fetchall()))

        try:
            return self._claim_in_transaction(claim, worker)
        except LimitsChanged:
            self.read_limits()
            return self.swap_and_claim([], worker, now, types, limit, recover, queues)[1]

    def _claim_in_transaction(
        self, claim: Callable[[psycopg.Connection[Any]], list[JobRecord]], worker: str
    ) -> list[JobRecord]:
        """``claim(conn)`` in one durable transaction, retried as ``_db.retrying`` does; the
        jobs it claimed for ``worker``, in serving order, handed out once. A COMMIT of
        unknown outcome is settled by reading the claimed rows back (:meth:`_still_claimed`).
        What ``claim`` raises (LimitsChanged) reaches the caller."""
        done: list[list[JobRecord]] = []

        def run() -> list[JobRecord]:
            done.clear()  # only this attempt's claim may be asked about
            with self._db.lock:
                with self._db.transaction("claim jobs", durable=self._fsync) as conn:
                    done[:] = [serving_order(claim(conn))]
                self.handed.add(done[0])
            return done[0]

        def settled() -> list[JobRecord] | None:
            # Asked of the rows, not of txid_status: a server that crashed during the
            # COMMIT forgets the transaction's xid with it and hands that xid to a new
            # transaction, whose commit would then read as this claim's.
            if not done:
                return None
            with self._db.lock:
                found = self._still_claimed(done[0], worker)
                self.handed.add(found)
            return found or None  # None: claim again

        return self._db.retrying(run, settled)

    def _still_claimed(self, records: list[JobRecord], worker: str) -> list[JobRecord]:
        """Those of a claim's ``records`` that are Running under ``worker`` from that very
        claim (same attempt, same start): all of them if its COMMIT landed, none if it did
        not. ``FOR SHARE`` waits for a transaction still finishing (a cut network, not a
        restart) to end, so that its outcome is read, not the rows before it."""
        if not records:
            return []

        def read() -> set[tuple[str, int, str | None]]:
            with self._db.transaction("read a claim's outcome") as conn:
                rows = conn.execute(q.CLAIMED_BY, ([r.job_id for r in records], worker)).fetchall()
            return {(job_id, attempts, started) for job_id, attempts, started in rows}

        found = self._db.retrying(read)
        return [r for r in records if (r.job_id, r.attempts, r.started) in found]

    def _written(self, pairs: Pairs, written: set[str]) -> list[JobRecord | None]:
        """The outcome of each pair, given the ids written; the claims written over are
        forgotten."""
        self.handed.forget([old for old, _ in pairs if old.job_id in written])
        return [new if new.job_id in written else None for _, new in pairs]

    def _landed(self, pairs: Pairs) -> set[str]:
        """The ids of the pairs whose stored row is, column for column, their new record:
        written by the statement whose outcome was lost."""
        if not pairs:
            return set()

        def read() -> set[str]:
            with self._db.transaction("read back the outcome of jobs") as conn:
                rows = conn.execute(q.GET_JOBS, ([new.job_id for _, new in pairs],)).fetchall()
            stored = {r.job_id: r for r in map(record_of, rows)}
            return {
                new.job_id
                for _, new in pairs
                if new.job_id in stored and same(stored[new.job_id], new)
            }

        return self._db.retrying(read)

    def _claimed_at(self, worker: str, now: str) -> list[JobRecord]:
        """The jobs a claim at ``now`` of unknown outcome claimed, in serving order."""

        def read() -> list[JobRecord]:
            with self._db.transaction("read a claim's outcome") as conn:
                rows = conn.execute(q.CLAIMED_AT, (worker, now)).fetchall()
            return [record_of(r) for r in rows]

        return serving_order(self.handed.new(self._db.retrying(read)))
