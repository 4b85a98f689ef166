"""The PostgreSQL job backend's reads, its workers' rows, its wake-ups and its history's
maintenance (prune, clear): a base class of ``PostgresJobBackend`` (``jobs.py``), each
method a transaction (or a listening session) of its own over the named statements of
``_queries.py``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from ..._errors import JobLedgerError
from ..._inputs import findable
from ..._job_record import JobRecord, JobStatus
from .._contract import QueuedCounts
from . import _queries as q
from ._db import Database, reconnecting
from ._heartbeat import WorkerLease
from ._listen import FinishListener, Listener
from ._rows import record_of

__all__ = ["JobReads"]


def _of_types(
    types: frozenset[str] | None, every: str, of_types: str
) -> tuple[str, tuple[Any, ...]]:
    """The statement for jobs of any type, or the one for ``types`` with its parameter."""
    if types is None:
        return every, ()
    return of_types, (sorted(types),)


class JobReads:
    """Reads, workers, wake-ups and history of ``PostgresJobBackend`` (its base class)."""

    _db: Database
    location: str
    worker_lease: float
    heartbeat: float
    prune_batch: int
    prune_pause: float

    def _tx(
        self, action: str, *, durable: bool = True
    ) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        raise NotImplementedError

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
    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue and status (every status of a queue that has jobs): one
        aggregate query, as :meth:`counts`."""
        out: dict[str, dict[str, int]] = {}
        with self._tx("count jobs") as conn:
            for queue, status, n in conn.execute(q.COUNT_BY_QUEUE):
                out.setdefault(queue, {s.value: 0 for s in JobStatus})[status] = int(n)
        return dict(sorted(out.items()))

    @reconnecting
    def queued_count(self, types: frozenset[str] | None) -> int:
        """Queued jobs (of ``types``), due or not."""
        statement, params = _of_types(types, q.COUNT_QUEUED, q.COUNT_QUEUED_OF_TYPES)
        with self._tx("count jobs") as conn:
            row = conn.execute(statement, params).fetchone()
        return int(row[0]) if row else 0

    @reconnecting
    def queued_by_type(
        self, now: str, queues: frozenset[str] | None = None
    ) -> dict[str, QueuedCounts]:
        """The Queued jobs per type (of ``queues``), due or not at ``now``: one aggregate
        query."""
        statement, params = q.QUEUED_BY_TYPE, [now, now, now]
        if queues is not None:
            statement = q.QUEUED_BY_TYPE_OF_QUEUES
            params.append(sorted(queues))  # type: ignore[arg-type]
        with self._tx("count jobs") as conn:
            rows = conn.execute(statement, params).fetchall()
        return {t: QueuedCounts(int(due), int(later), nxt) for t, due, later, nxt in rows}

    def prune(self, cutoff: str, on_batch: Callable[[int], None] | None = None) -> int:
        """Delete finished jobs whose ``finished`` is before ``cutoff`` (those without
        one too); how many. In batches of at most ``prune_batch`` rows, each its own
        short transaction, oldest first: workers never wait on a prune (it locks no live
        row, and skips a finished row another transaction holds), and a prune stopped
        between batches (``on_batch`` raised, Ctrl-C) keeps what it deleted. ``on_batch``
        is called with each batch's count once it is committed."""
        total = 0
        after = ""  # where the next batch starts (inclusive), in ``finished`` order
        while True:
            began = time.monotonic()
            picked, last, deleted = self._prune_batch(cutoff, after)
            took = time.monotonic() - began
            total += deleted
            if deleted and on_batch is not None:
                on_batch(deleted)
            # Fewer picked than asked: none left (or only rows others hold, left for the
            # next prune). Picked but none deleted: rows changed under the batch since its
            # snapshot; stopping there cannot loop.
            if picked < self.prune_batch or not deleted:
                return total
            after = last or after
            # A batch writes its pages' images to the WAL (most of a 2,000-row batch's
            # 0.75 MB); back to back, a million rows came to 500 MB in 4 s, which brings
            # a checkpoint on, and the workers' commits wait behind the disk.
            # Pausing as long as the batch took halves that pace, and backs off by itself
            # when the server is busy (a slow batch, a long pause). 1,000,000 rows beside
            # a worker on 2 busy cores (bench.pg --scale): waits over 100 ms as rare as
            # without a prune (0 and 5 in 18-20 s), the worker at 0.85-0.93 of its rate;
            # without the pause, 6 and 11 in 9-11 s, the worker at 0.62-0.66.
            time.sleep(took * self.prune_pause)

    @reconnecting
    def _prune_batch(self, cutoff: str, after: str) -> tuple[int, str, int]:
        """One batch of :meth:`prune`: (rows picked, the last ``finished`` among them,
        rows deleted). Run again whole when its connection is lost: a batch that did
        land is then found done, and counted as none."""
        n = self.prune_batch
        with self._tx("prune jobs") as conn:
            row = conn.execute(q.PRUNE_JOBS, (cutoff, n, after, cutoff, n)).fetchone()
        assert row is not None
        return int(row[0]), str(row[1] or ""), int(row[2])

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
