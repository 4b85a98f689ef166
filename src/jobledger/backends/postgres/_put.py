"""How the PostgreSQL job backend stores new jobs: the statements of ``put`` inside its
transaction, unique keys included, and what a lost COMMIT's rerun takes for its own.

``PostgresJobBackend.put`` (``jobs.py``) runs one job as one statement (``q.ENQUEUE_ONE``)
and anything else through :func:`put_once`, in a transaction it runs again after a lost
connection; ``change_schedule`` calls :func:`put_once` inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..._enqueue import key_taken_conflict
from ..._errors import JobLedgerError
from ..._job_record import JobRecord
from . import _queries as q
from ._db import TransactionAborted
from ._listen import CHANNEL, notify
from ._rows import SEQ, copy_row, doc_of, record_of, same

__all__ = [
    "ONE_STORED_AGAIN",
    "StoredAfterAll",
    "blocks_for",
    "by_id",
    "copy_new",
    "copy_staged",
    "first_of_each",
    "key_holders",
    "landed",
    "one_args",
    "one_outcome",
    "one_sent",
    "put_once",
    "put_outcomes",
    "refuse_taken_keys",
    "seqs_of",
    "settle_lost",
]

# Batches of at least this many new jobs go in by COPY: its start and its savepoint are
# round trips of their own (measured: 20 rows cost the same either way, 50 a sixth less
# by COPY).
_COPY_FROM = 32
# The two-key advisory lock space (objsubid 2 in pg_locks) of unique keys, apart from the
# migrations' ("jlmg"), the schedule names' ("jlsc", jobs.py) and the leases' locks.
_UNIQUE_KEYS_LOCK = 0x6A6C756B  # "jluk"


def blocks_for(n: int) -> int:
    """How many blocks of seqs n jobs take (``q.SEQ_BLOCK``)."""
    return -(-n // q.SEQ_BLOCK)


def seqs_of(blocks: list[tuple[int]], n: int) -> list[int]:
    """n seqs, in order, from the blocks whose first values are ``blocks`` (rows)."""
    seqs: list[int] = []
    for (first,) in sorted(blocks):
        seqs.extend(range(first, first + min(q.SEQ_BLOCK, n - len(seqs))))
    return seqs


def insert_new(conn: psycopg.Connection[Any], records: list[JobRecord]) -> set[str]:
    """Insert the records whose ids are not stored yet, in one statement; their ids."""
    return {
        row[0] for row in conn.execute(q.INSERT_NEW_JOBS, (Jsonb([doc_of(r) for r in records]),))
    }


def copy_new(conn: psycopg.Connection[Any], records: list[JobRecord]) -> set[str] | None:
    """COPY records in whose ids no stored job can have. COPY costs the server about a
    third of INSERT ... SELECT FROM jsonb_to_recordset ... ON CONFLICT (1,000 rows into
    the job table: 13.6 against 29.4 us a row, wall time) but cannot skip a row that
    exists. Returns their ids, or None if one existed after all (a rerun of a batch whose
    commit was lost): the COPY is then undone (a savepoint) and the caller inserts the
    batch the general way."""
    try:
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(q.COPY_JOBS) as copy,
        ):
            for r in records:
                copy.write_row(copy_row(r))
    except psycopg.errors.UniqueViolation:
        return None
    return {r.job_id for r in records}


def first_of_each(records: list[JobRecord]) -> dict[str, JobRecord]:
    """The records to store, by id: the first of each id, and of each unique key."""
    unique: dict[str, JobRecord] = {}
    keys: set[str] = set()
    for record in records:
        key = live_key(record)
        if record.job_id in unique or (key is not None and key in keys):
            continue
        unique[record.job_id] = record
        if key is not None:
            keys.add(key)
    return unique


def put_outcomes(
    records: list[JobRecord],
    unique: dict[str, JobRecord],
    staged: dict[str, JobRecord],
    inserted: set[str],
    existing: dict[str, JobRecord],
) -> list[tuple[JobRecord, bool]]:
    """put's answer, one per record given: a record left out for an id or a key given
    earlier in the batch gets that earlier record's stored job, with False."""
    by_key = {live_key(r): r.job_id for r in unique.values() if live_key(r) is not None}
    out = []
    first = set()
    for record in records:
        job_id = record.job_id
        key = live_key(record)
        if job_id not in unique and key is not None:
            job_id = by_key[key]
        if job_id in inserted:
            out.append((staged[job_id], job_id not in first and job_id == record.job_id))
            first.add(job_id)
        else:
            out.append((existing[job_id], False))
    return out


def live_key(record: JobRecord) -> str | None:
    """The unique key that makes ``record`` unique: a live job's (every job put enqueues
    is Queued; a finished one, as an import or a test stores it, takes no key)."""
    return record.unique_key if record.status.is_live else None


def key_holders(
    conn: psycopg.Connection[Any], keys: list[str], unique_since: str | None
) -> dict[str, JobRecord]:
    """The job holding each of ``keys`` (see ``q.KEY_HOLDERS``), by key."""
    holders: dict[str, JobRecord] = {}
    for record in map(record_of, conn.execute(q.KEY_HOLDERS, (keys, unique_since))):
        assert record.unique_key is not None
        holders.setdefault(record.unique_key, record)
    return holders


def by_id(conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, JobRecord]:
    """The stored jobs of ``ids``, by id."""
    if not ids:
        return {}
    return {r.job_id: r for r in map(record_of, conn.execute(q.GET_JOBS, (ids,)))}


def settle_lost(
    lost: list[dict[str, JobRecord]],
    staged: dict[str, JobRecord],
    inserted: set[str],
    existing: dict[str, JobRecord],
) -> None:
    """Take a job stored by the attempt whose COMMIT was cut off (``lost[0]``: its
    inserts by id) for this attempt's own insert, and remember this attempt's."""
    for job_id, stored in list(existing.items()) if lost else ():
        mine = lost[0].get(job_id)
        if (
            mine
            and stored.job_id == job_id
            and (mine.seq, mine.created) == (stored.seq, stored.created)
        ):
            staged[job_id] = stored  # the lost attempt's insert: it landed
            inserted.add(job_id)
            del existing[job_id]
    lost[:] = [{job_id: staged[job_id] for job_id in inserted}]


def landed(stored: JobRecord, sent: JobRecord, seq: int | None) -> bool:
    """Whether ``stored`` is the insert of an attempt that sent ``sent`` and got
    ``seq`` back (None: its answer was lost)."""
    if seq is not None:
        return (stored.seq, stored.created) == (seq, sent.created)
    return same(stored, sent.with_seq(stored.seq))


def put_once(
    conn: psycopg.Connection[Any],
    unique: dict[str, JobRecord],
    fresh: frozenset[str],
    unique_since: str | None,
    location: str,
) -> tuple[dict[str, JobRecord], set[str], dict[str, JobRecord]]:
    """put's statements: the records staged (with their seq), the ids inserted, and,
    by the id of each record not inserted, the stored job returned for it (the job
    with its id, else the job holding its key).

    With ``unique_since`` the keys are locked first (a transaction-level advisory lock
    on each key's hash, ``q.LOCK_UNIQUE_KEYS``) and only then looked for, in a
    statement of its own. Why: the unique index alone settles two live jobs, but not
    "finished less than ``unique_for`` ago". A holder looked for in the snapshot of an
    earlier statement, or of the insert's own, could miss a job another process
    enqueued, ran and finished meanwhile; once the lock is ours, every enqueue of the
    key before us has committed, READ COMMITTED gives the next statement a snapshot
    holding it, and its FOR SHARE waits for a completion in flight (see
    ``q.KEY_HOLDERS``). Enqueues without a key, or without ``unique_since``, take no
    lock: one statement, as before."""
    keys = sorted({k for k in map(live_key, unique.values()) if k is not None})
    existing: dict[str, JobRecord] = {}
    if keys:
        if unique_since is not None:
            conn.execute(q.LOCK_UNIQUE_KEYS, (_UNIQUE_KEYS_LOCK, keys))
        holders = key_holders(conn, keys, unique_since)
        taken = [r.job_id for r in unique.values() if live_key(r) in holders]
        # An existing id wins over a key (as the one-job statement has it).
        same_id = by_id(conn, taken)
        for job_id in taken:
            key = live_key(unique[job_id])
            assert key is not None
            existing[job_id] = same_id.get(job_id) or holders[key]
    todo = [r for r in unique.values() if r.job_id not in existing]
    staged: dict[str, JobRecord] = {}
    inserted: set[str] = set()
    if todo:
        n = len(todo)
        seqs = seqs_of(conn.execute(q.NEXT_SEQ_BLOCKS, (blocks_for(n),)).fetchall(), n)
        staged = {r.job_id: r.with_seq(n) for r, n in zip(todo, seqs, strict=True)}
        copied: set[str] | None = None
        # COPY cannot skip a row: one refused (an id, or a key taken since the look
        # above) undoes it, and the batch goes in by INSERT instead.
        if len(staged) >= _COPY_FROM and fresh.issuperset(staged):
            copied = copy_new(conn, list(staged.values()))
        inserted = copied if copied is not None else insert_new(conn, list(staged.values()))
        if inserted:
            notify(conn)
    missing = [i for i in staged if i not in inserted]
    if missing:
        existing.update(by_id(conn, missing))
        # Refused for its key: a job another transaction made live meanwhile.
        refused = {staged[i].unique_key for i in missing if i not in existing}
        if refused:
            holders = key_holders(conn, sorted(k for k in refused if k), None)
            for i in missing:
                key = staged[i].unique_key
                if i not in existing and key in holders:
                    existing[i] = holders[key]
        lost = [i for i in missing if i not in existing]
        if lost:
            # Its holder finished and was pruned between the two statements: rare
            # enough to raise, and the transaction is run again (a deadlock's way).
            raise TransactionAborted(
                f"jobs {', '.join(lost)} in {location} were refused for a unique "
                "key whose holder is gone; enqueueing them again"
            )
    return staged, inserted, existing


def refuse_taken_keys(
    conn: psycopg.Connection[Any],
    changed: dict[str, tuple[JobRecord, JobRecord]],
    changes: list[tuple[str, Callable[[JobRecord], JobRecord]]],
    out: list[JobRecord | JobLedgerError],
    location: str,
) -> None:
    """Refuse (in ``out``, dropped from ``changed``) each change that makes a finished
    job with a unique key live (a retry) while another live job holds that key: the
    unique index would refuse the whole batch's write."""
    reviving = {
        job_id: new.unique_key
        for job_id, (old, new) in changed.items()
        if new.unique_key is not None and new.status.is_live and not old.status.is_live
    }
    if not reviving:
        return
    holders = key_holders(conn, sorted({k for k in reviving.values() if k}), None)
    for job_id, key in reviving.items():
        holder = holders.get(key or "")
        if holder is None or holder.job_id == job_id:
            continue
        del changed[job_id]
        refusal = key_taken_conflict([job_id], holder, location)
        for i, (changed_id, _) in enumerate(changes):
            if changed_id == job_id:
                out[i] = refusal


# -- one job, one statement (q.ENQUEUE_ONE): what the blocking and the async put share -----

#: The statement that reads ENQUEUE_ONE's stored row again (its parameters: one_args[2:]).
ONE_STORED_AGAIN = q.GET_JOB_OR_KEY_HOLDER


def one_args(doc: Jsonb, record: JobRecord) -> tuple[Any, ...]:
    """ENQUEUE_ONE's parameters for ``record`` (``doc``: its row as JSON); the last three
    are GET_JOB_OR_KEY_HOLDER's."""
    return (doc, CHANNEL, record.job_id, record.unique_key, record.job_id)


def one_sent(row: tuple[Any, ...] | None, lost: list[int | None], first: bool) -> None:
    """Note what an ENQUEUE_ONE attempt tells of its insert in ``lost``: the seq it got
    back when it inserted; nothing when the first attempt inserted nothing."""
    if row is not None and row[0]:
        lost[:] = [int(row[1 + SEQ])]
    elif first:
        lost.clear()  # this attempt inserted nothing


def one_outcome(
    row: tuple[Any, ...], record: JobRecord, lost: list[int | None]
) -> tuple[JobRecord, bool]:
    """put's answer for one job from ENQUEUE_ONE's row: (inserted, True); or the stored
    job, which is new only when it is this call's own insert whose answer was lost."""
    stored = record_of(row[1:])
    if row[0]:
        return stored, True
    mine = stored.job_id == record.job_id  # not another job holding the key
    return stored, mine and bool(lost) and landed(stored, record, lost[0])


class _Refused(Exception):
    """A record of a COPY failed its checks: the COPY is ended with this, not its text."""


class StoredAfterAll(Exception):
    """A batch COPY met an id that is stored (the transaction is aborted): run it again
    the general way."""


def copy_staged(
    conn: psycopg.Connection[Any], records: Sequence[JobRecord], seqs: list[int]
) -> dict[str, JobRecord]:
    """COPY in records whose ids no stored job can have, each with its seq (in order):
    the staged records by id. COPY costs the server about a third of INSERT ... SELECT
    FROM jsonb_to_recordset ... ON CONFLICT (1,000 rows into the job table: 13.6 against
    29.4 us a row, wall time) but cannot skip a row that exists.

    Each record is built (when ``records`` builds them on first use), staged and
    formatted while the server takes in the rows sent before it (psycopg sends them in
    chunks as they fill): the client's work and the server's overlap. A record that fails
    its checks is raised as it is, once the COPY is ended (without its message, which
    would reach the server's log) and its transaction with it: nothing is stored. An id
    stored after all (the rerun of a batch whose commit was lost never comes here) raises
    :class:`StoredAfterAll`: the COPY failed, and with it the transaction, which the
    caller runs again the general way. No savepoint guards it: two round trips per batch,
    for a case a rerun never meets."""
    staged: dict[str, JobRecord] = {}
    refused: list[Exception] = []
    built = iter(records)
    try:
        with conn.cursor() as cur, cur.copy(q.COPY_JOBS) as copy:
            write = copy.write_row
            for seq in seqs:
                try:
                    record = next(built)
                except Exception as exc:
                    refused.append(exc)
                    raise _Refused from None
                new = record.with_seq(seq)
                staged[new.job_id] = new
                write(copy_row(new))
    except psycopg.errors.UniqueViolation:
        raise StoredAfterAll from None
    except _Refused:
        raise refused[0] from None
    return staged
