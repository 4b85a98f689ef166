"""The limits of :class:`~jobledger.JobQueue` (a base class of it): a named queue's most
Running jobs, a job type's rate limit, and the counts per queue. What they mean, and
which claims they allow, is ``_limits.py``'s; the backend stores them where every worker
on every machine reads them (a folder's limits.json, PostgreSQL's jobledger_limits) and
checks them inside the claim."""

from __future__ import annotations

from collections.abc import Iterable

from ._inputs import check_name
from ._job_types import type_rate_limit
from ._limits import Limits, check_limit, check_queue_name, check_rate
from ._log import log
from .backends._contract import JobBackend

__all__ = ["QueueLimits", "declare_rate_limits"]


class QueueLimits:
    """What :class:`~jobledger.JobQueue` does with limits (these methods use its writer
    backend and its reader)."""

    def _opened(self) -> JobBackend:
        raise NotImplementedError

    def _reading(self) -> JobBackend:
        raise NotImplementedError

    def set_limit(self, queue_name: str, limit: int | None) -> None:
        """Allow at most ``limit`` jobs of the queue ``queue_name`` Running at once,
        across every worker on every machine (None: no limit; 0: none starts). Stored
        (durable when this returns) and obeyed by every claim that starts afterwards;
        jobs already Running above a lowered limit run on, and no new one starts until
        the queue is below it."""
        check_queue_name(queue_name)
        if limit is not None:
            check_limit(limit, "a queue's limit")
        self._opened().set_limit(queue_name, limit)
        log.info("Queue %s: limit %s", queue_name, "removed" if limit is None else limit)

    def set_rate_limit(
        self,
        job_type: str,
        n: int | None,
        per_seconds: float,
        *,
        key_field: str | None = None,
    ) -> None:
        """Allow at most ``n`` starts of jobs of ``job_type`` per rate key within any
        ``per_seconds`` seconds, across every worker (None: no rate limit). A job's key is
        its ``rate_key`` (``enqueue(..., rate_key=)``), else its payload's ``key_field``
        (read when it is claimed), else none: the type's jobs without a key share one. A
        job over the limit is not started (its attempt not counted) and waits for the
        window to move, while jobs of other keys are served. Stored as
        :meth:`set_limit` stores a limit."""
        check_name(job_type, "job type")
        rate = None if n is None else check_rate(n, per_seconds, key_field)
        self._opened().set_rate_limit(job_type, rate)
        if rate is None:
            log.info("Job type %s: rate limit removed", job_type)
        else:
            log.info("Job type %s: at most %d starts per key per %g s", job_type, n, rate.per)

    def limits(self) -> Limits:
        """The stored limits: ``.queues`` (queue name -> most Running jobs) and ``.rates``
        (job type -> :class:`RateLimit`: ``n``, ``per``, ``key_field``). Reads only."""
        return self._reading().limits()

    def counts_by_queue(self) -> dict[str, dict[str, int]]:
        """Jobs per queue (only queues that have some), each per status (``"Queued"``,
        ``"Running"``, ``"Completed"``...). Reads only; cheap: the index (files) or one
        aggregate query (PostgreSQL), as :meth:`counts`."""
        return self._reading().counts_by_queue()


def declare_rate_limits(queue: QueueLimits, types: Iterable[str]) -> None:
    """Store the rate limits ``@job_type(..., rate_limit=)`` declares for ``types`` where
    the stored ones differ (a Worker's start: nothing is read unless one is declared)."""
    declared = {t: r for t in sorted(types) if (r := type_rate_limit(t)) is not None}
    if not declared:
        return
    stored = queue._opened().limits().rates
    for job_type, rate in declared.items():
        if stored.get(job_type) != rate:
            queue.set_rate_limit(job_type, rate.n, rate.per, key_field=rate.key_field)
