"""The enqueue methods of :class:`~jobledger.JobQueue` (a base class of it): a job's
record is made by ``_enqueue.py``'s policy and stored by the backend's ``put``, or, with
``connection=``, inside the caller's own transaction (``_caller_transaction.py``)."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Sequence

from ._caller_transaction import put_in_caller_transaction
from ._clock import Clock, iso_utc
from ._durations import to_timedelta, to_timeout
from ._enqueue import announce, new_record, new_records, run_after_text
from ._errors import ConfigError
from ._job_record import JobRecord
from .backends._contract import JobBackend

__all__ = ["QueueEnqueue"]


class QueueEnqueue:
    """How :class:`~jobledger.JobQueue` stores new jobs (these methods use its clock, its
    writer backend and its wake-ups)."""

    clock: Clock
    backend: JobBackend

    def _opened(self) -> JobBackend:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(
        self,
        job: object,
        job_id: str | None = None,
        priority: int = 0,
        run_after: dt.datetime | dt.timedelta | float | None = None,
        max_attempts: int = 3,
        timeout: dt.timedelta | float | None = None,
        *,
        unique_key: str | None = None,
        unique_for: dt.timedelta | float | None = None,
        connection: object | None = None,
        queue: str = "default",
        rate_key: str | None = None,
    ) -> str:
        """Store a job and return its id; durable before it returns.

        ``job`` is a dict with a ``"type"`` key or an instance of a registered type. The id
        is ``job_id``, else the payload's own ``job_id`` field, else a new UUID. Enqueueing
        an id that exists returns it and stores nothing (never a second entry). Higher
        ``priority`` is served first; ``run_after`` (a datetime, timedelta or seconds)
        delays it. ``timeout`` (a timedelta or seconds, more than 0) bounds each attempt:
        past it a Worker stops the attempt (see :class:`Worker`) and it fails "timed out";
        None leaves it to the type's timeout (``@job_type(..., timeout=)``), else the
        Worker's. A payload JSON cannot represent raises TypeError before any write.

        ``connection`` (PostgreSQL): a psycopg 3 ``Connection`` in a transaction of the
        caller's: the job is inserted in it, so it exists (and workers wake) if and only
        if the caller commits (``_caller_transaction.py``). TypeError for an
        ``AsyncConnection`` (the async API's); ConfigError for a folder queue, or an
        autocommit connection outside a transaction block.

        ``unique_key`` (a string, e.g. ``"report:acct-1:2025-01-20"``) makes the job
        unique: while a job with that key is Queued or Running, enqueueing the key again
        returns that job's id and stores nothing, however many processes try at once (one
        job is stored). With ``unique_for`` (a timedelta or seconds) a job with the key
        that finished (Completed, Failed or Cancelled) less than that long ago, by the
        queue's clock, counts too. The key is kept with the job (:attr:`Job.unique_key`).
        An id that exists is looked at first: its job is returned whatever its key.

        ``queue`` names the queue the job waits in (``"default"``): a :class:`Worker`
        serves the queues it is given, and a queue's limit (:meth:`set_limit`) bounds its
        Running jobs everywhere. ``rate_key`` is the key its type's rate limit
        (:meth:`set_rate_limit`) counts its starts under (None: the payload's field the
        limit names, else one key for all the type's jobs without one).
        """
        now_dt = self.clock.now()
        record, fresh = self._new_record(
            job,
            job_id,
            priority,
            run_after,
            max_attempts,
            timeout,
            unique_key,
            queue,
            rate_key,
            now_dt,
        )
        since = self._unique_since(unique_for, now_dt, [unique_key])
        if connection is not None:  # no wake-up here: the NOTIFY at its commit wakes all
            self._joinable(since)
            joined = put_in_caller_transaction(
                self.backend, self._opened, connection, [record], fresh
            )
            return joined[0][0].job_id
        # One job, without enqueue_many's lists: enqueue is the call a server makes per job.
        stored = self._opened().put([record], fresh, unique_since=since)
        self._announce(stored)
        return stored[0][0].job_id

    def _new_record(
        self,
        job: object,
        job_id: str | None,
        priority: int,
        run_after: dt.datetime | dt.timedelta | float | None,
        max_attempts: int,
        timeout: dt.timedelta | float | None,
        unique_key: str | None,
        queue: str,
        rate_key: str | None,
        now: dt.datetime | None = None,
    ) -> tuple[JobRecord, frozenset[str]]:
        """The record :meth:`enqueue` stores for its arguments at ``now`` (None: the
        queue's clock now), and the ids generated for it (``new_record``'s ``fresh``): the
        one place the blocking and the async enqueue turn their arguments into a record."""
        now = self.clock.now() if now is None else now
        fresh: set[str] = set()
        record = new_record(
            job,
            job_id,
            priority,
            run_after_text(run_after, now),
            max_attempts,
            iso_utc(now),
            fresh,
            to_timeout(timeout),
            unique_key,
            queue,
            rate_key,
        )
        return record, frozenset(fresh)

    def _new_records(
        self,
        jobs: Iterable[object],
        job_ids: Iterable[str | None] | None,
        priority: int,
        run_after: dt.datetime | dt.timedelta | float | None,
        max_attempts: int,
        timeout: dt.timedelta | float | None,
        unique_keys: Iterable[str | None] | None,
        queue: str,
        rate_keys: Iterable[str | None] | None,
        now: dt.datetime | None = None,
    ) -> tuple[Sequence[JobRecord], frozenset[str]]:
        """The records :meth:`enqueue_many` stores for its arguments at ``now`` (None:
        the queue's clock now), and the ids generated for them, as :meth:`_new_record`."""
        return new_records(
            jobs,
            job_ids,
            priority,
            run_after,
            max_attempts,
            self.clock.now() if now is None else now,
            to_timeout(timeout),
            unique_keys,
            queue,
            rate_keys,
        )

    @staticmethod
    def _joinable(since: str | None) -> None:
        """Refuse ``unique_for`` in the caller's transaction: its check takes locks and
        reads that belong to the queue's own transaction."""
        if since is not None:
            raise ConfigError(
                "unique_for cannot be used with connection=: enqueue with unique_key alone "
                "in your transaction (a live job's key is still unique), or without "
                "connection="
            )

    @staticmethod
    def _unique_since(
        unique_for: dt.timedelta | float | None, now: dt.datetime, keys: Iterable[str | None]
    ) -> str | None:
        """The cutoff of ``unique_for``: a finished job with the key counts when it
        finished at or after it (None: only live jobs count)."""
        if unique_for is None:
            return None
        if all(key is None for key in keys):
            raise ConfigError("unique_for needs a unique_key: it says how long a key stays taken")
        return iso_utc(now - to_timedelta(unique_for, "unique_for"))

    def enqueue_many(
        self,
        jobs: Iterable[object],
        *,
        priority: int = 0,
        run_after: dt.datetime | dt.timedelta | float | None = None,
        max_attempts: int = 3,
        job_ids: Iterable[str | None] | None = None,
        timeout: dt.timedelta | float | None = None,
        unique_keys: Iterable[str | None] | None = None,
        unique_for: dt.timedelta | float | None = None,
        connection: object | None = None,
        queue: str = "default",
        rate_keys: Iterable[str | None] | None = None,
    ) -> list[str]:
        """Store many jobs in one batch (one lock, one index write); returns their ids.
        The options apply to every job, as :meth:`enqueue` takes them; ``job_ids`` and
        ``unique_keys`` (and ``rate_keys``) give each job its own (None: none), in the
        jobs' order; ``queue`` is the batch's. A job
        whose key is held (see :meth:`enqueue`) gets the holder's id; of the jobs of the
        batch with one key, the first is stored and the others get its id
        (``connection``: all of them in the caller's transaction, one batch of
        statements)."""
        now = self.clock.now()
        keys = list(unique_keys) if unique_keys is not None else None
        records, fresh = self._new_records(
            jobs, job_ids, priority, run_after, max_attempts, timeout, keys, queue, rate_keys, now
        )
        since = self._unique_since(unique_for, now, keys or [])
        if connection is not None:
            self._joinable(since)
            joined = put_in_caller_transaction(
                self.backend, self._opened, connection, records, fresh
            )
            return [r.job_id for r, _ in joined]
        stored = self._opened().put(records, fresh, unique_since=since)
        self._announce(stored)
        return [r.job_id for r, _ in stored]

    def _announce(self, stored: builtins.list[tuple[JobRecord, bool]]) -> None:
        """Wake this process's watchers if a job is new, and log each enqueue."""
        if any(is_new for _, is_new in stored):
            self._wake()
        announce(stored)
