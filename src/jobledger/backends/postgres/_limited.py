"""Limits in PostgreSQL: their tables, what a worker knows of them, and the claim that
obeys them.

- ``jobledger_limits`` holds them, ``jobledger_limits_version`` their version (one row).
  A change of them is one transaction that first takes the version table's ACCESS
  EXCLUSIVE lock, then moves the version on (``store``).
- A worker knows the limits and their version (``Known``; read on its first claim). Its
  claim statement (``_queries.claim_next``) reads the version and claims nothing when it
  is not the one the worker knows: the worker then reads the limits again and claims
  under them. That statement holds the version table's share lock while it runs, so a
  change of the limits waits for the claims under way, and the claims after it see its
  version: no claim ignores a limit stored before it. A worker none of whose queues and
  types has a limit claims by that one statement, as if there were no limits.
- A claim that has limits to obey (``claim``) is one transaction: it takes the advisory
  lock of the limited claims (they take turns), recovers a dead worker's jobs first when
  a session has ended, counts the Running jobs of its limited queues and the recent
  starts of its rate-limited types (each a statement of its own, so it sees every claim
  that committed before it took the lock), then picks due jobs in serving order, locked,
  leaving out full queues and full rate keys (``_queries.pick_limited``), and admits each
  through ``_limits.Gate``; a job the gate refuses fills a queue or a key, which the next
  pick leaves out. The jobs admitted are made Running and their starts stored, in that
  transaction. A COMMIT of unknown outcome is settled as ``_claims.OneStatement`` settles
  a claim's: by reading the claimed rows back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from ..._job_record import JobRecord
from ..._limits import Gate, Limits, RateLimit, rate_key_of, window_start
from .._contract import Recovery
from . import _queries as q
from ._db import reconnecting
from ._rows import record_of

if TYPE_CHECKING:
    from ._claims import OneStatement

__all__ = ["JobLimits", "Known", "LimitsChanged", "claim_limited", "read_limits", "store_limit"]

RecoverIn = Callable[
    [psycopg.Connection[Any], Callable[[str | None], bool], Callable[[JobRecord], JobRecord]],
    list[JobRecord],
]


class LimitsChanged(Exception):
    """The stored limits are not those this worker knew: read them again and claim anew."""


def read_limits(conn: psycopg.Connection[Any]) -> tuple[int, Limits]:
    """The limits' version and the limits, in the caller's transaction."""
    row = conn.execute(q.LIMITS_VERSION).fetchone()
    version = int(row[0]) if row is not None else 0
    queues: dict[str, int] = {}
    rates: dict[str, RateLimit] = {}
    for kind, name, n, per, key_field in conn.execute(q.LIMITS):
        if kind == "queue":
            queues[name] = int(n)
        else:
            rates[name] = RateLimit(int(n), float(per), key_field)
    return version, Limits(queues, rates)


def store_limit(
    conn: psycopg.Connection[Any],
    kind: str,
    name: str,
    n: int | None,
    per: float | None = None,
    key_field: str | None = None,
) -> None:
    """Store (or, with ``n`` None, delete) one limit, in the caller's transaction, after
    the version table's lock; the version moves on."""
    conn.execute(q.LOCK_LIMITS_VERSION)
    if n is None:
        conn.execute(q.DELETE_LIMIT, (kind, name))
    else:
        conn.execute(q.PUT_LIMIT, (kind, name, n, per, key_field))
    conn.execute(q.BUMP_LIMITS_VERSION)


class Known:
    """The limits a backend object knows, with their version. At first version 0, the
    version a schema starts with, before any limit was ever stored: a worker's first
    claim reads nothing more; the claim statement says when the stored version is
    another, and the limits are read then."""

    def __init__(self) -> None:
        self.version = 0
        self.limits = Limits()
        self._guard = threading.Lock()

    def set(self, version: int, limits: Limits) -> None:
        """What was read. A reader slower than another may set an older version: the next
        claim statement then finds it is not the stored one, and it is read again."""
        with self._guard:
            self.version, self.limits = version, limits


def claim_limited(
    conn: psycopg.Connection[Any],
    known: Known,
    worker: str,
    now: str,
    types: frozenset[str] | None,
    queues: frozenset[str] | None,
    limit: int,
    lease: float,
    recover: tuple[RecoverIn, Recovery] | None,
) -> list[JobRecord]:
    """The claim under limits (see the module docstring), in the caller's transaction.
    Raises LimitsChanged when no limit applies to it any more (the caller claims by the
    one statement instead)."""
    conn.execute(q.LOCK_LIMITED_CLAIMS)
    version, limits = read_limits(conn)
    known.set(version, limits)
    queue_limits, rates = limits.applying(queues, types)
    if not queue_limits and not rates:
        raise LimitsChanged
    if recover is not None:
        gone = conn.execute(q.ANY_SESSION_GONE).fetchone()
        if gone is not None and gone[0]:
            recover_in, (keep, decide) = recover
            recover_in(conn, keep, decide)
    running: dict[str, int] = {}
    if queue_limits:
        rows = conn.execute(q.RUNNING_IN_QUEUES, (sorted(queue_limits),)).fetchall()
        running = {name: int(n) for name, n in rows}
    starts: dict[tuple[str, str], list[str]] = {}
    if rates:
        since = min(window_start(now, r.per) for r in rates.values())
        for job_type, key, started in conn.execute(q.RATE_STARTS, (sorted(rates), since)):
            starts.setdefault((job_type, key), []).append(started)
    gate = Gate(queue_limits, running, rates, starts, now)
    chosen = _choose(conn, gate, now, types, queues, limit)
    if not chosen:
        return []
    rows = conn.execute(q.CLAIM_CHOSEN, (worker, now, lease, [r.job_id for r in chosen])).fetchall()
    claimed = [record_of(r) for r in rows]
    admitted = [r for r in claimed if r.type in rates]
    if admitted:
        for job_type in sorted({r.type for r in admitted}):
            conn.execute(q.FORGET_RATE_STARTS, (job_type, gate.cutoff(job_type)))
        keys = [rate_key_of(r, rates[r.type]) for r in admitted]
        conn.execute(q.ADD_RATE_STARTS, ([r.type for r in admitted], keys, [now] * len(admitted)))
    return claimed


def _choose(
    conn: psycopg.Connection[Any],
    gate: Gate,
    now: str,
    types: frozenset[str] | None,
    queues: frozenset[str] | None,
    limit: int,
) -> list[JobRecord]:
    """The jobs the gate admits, in serving order, up to ``limit``: picks until one
    comes back short or the claim is full, each leaving out what filled up."""
    chosen: list[JobRecord] = []
    refused: list[str] = []
    while len(chosen) < limit:
        want = limit - len(chosen)
        full_keys = gate.full_keys()
        rate_types = sorted(gate.rates)
        statement = q.pick_limited(types is not None, queues is not None, len(rate_types))
        params: list[Any] = [now]
        if types is not None:
            params.append(sorted(types))
        if queues is not None:
            params.append(sorted(queues))
        params += [gate.full_queues(), refused]
        for job_type in rate_types:
            params += [job_type, gate.rates[job_type].key_field, full_keys.get(job_type, [])]
        params.append(want)
        rows = conn.execute(statement, params).fetchall()
        for record in map(record_of, rows):
            if len(chosen) < limit and gate.admit(record):
                chosen.append(record)
            else:
                refused.append(record.job_id)
        if len(rows) < want:
            break
    return chosen


class JobLimits:
    """The limits of ``PostgresJobBackend`` (its base class): read and stored."""

    _one: OneStatement

    def _tx(
        self, action: str, *, durable: bool = True
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

    # -- limits ---------------------------------------------------------------------------

    def limits(self) -> Limits:
        """The stored limits: one transaction (which also tells the claims of this object)."""
        self._one.read_limits()
        return self._one.known.limits

    def set_limit(self, queue: str, limit: int | None) -> None:
        """Store ``queue``'s limit (see ``_limited.store_limit``)."""
        self._store_limit("queue", queue, limit)

    def set_rate_limit(self, job_type: str, rate: RateLimit | None) -> None:
        """Store ``job_type``'s rate limit (see ``_limited.store_limit``)."""
        if rate is None:
            self._store_limit("rate", job_type, None)
        else:
            self._store_limit("rate", job_type, rate.n, rate.per, rate.key_field)

    @reconnecting
    def _store_limit(
        self, kind: str, name: str, n: int | None, per: float | None = None, key: str | None = None
    ) -> None:
        with self._tx("store a limit") as conn:
            store_limit(conn, kind, name, n, per, key)
