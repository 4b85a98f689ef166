"""Enqueue inside the caller's own transaction: ``JobQueue.enqueue(..., connection=conn)``.

On a PostgreSQL queue the job is inserted with the caller's psycopg 3 connection, inside
the transaction the caller has open there (the one that writes its order, its account,
its upload...): the job exists if and only if that transaction commits, and idle workers
are woken at that commit, not before (NOTIFY is delivered on commit). No job for a write
that was rolled back, no write without its job. The records are made and checked as
every enqueue's (``_enqueue.py``) and stored by the same statements
(``backends/postgres/_joined.py``, which says what runs on the caller's connection).

Durable as the caller's commit is: when it returns, under the server's
``synchronous_commit`` (on by default) as every commit. The queue's own ``durability``
does not apply: the commit is not the queue's.

A queue in a folder has no transaction to join: ConfigError, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._errors import ConfigError
from ._job_record import JobRecord
from ._log import log
from .backends._contract import CallerTransactionBackend, JobBackend

__all__ = ["put_in_caller_transaction"]


def put_in_caller_transaction(
    backend: JobBackend,
    opened: Callable[[], JobBackend],
    connection: object,
    records: Sequence[JobRecord],
    fresh: frozenset[str],
) -> list[tuple[JobRecord, bool]]:
    """Store ``records`` in the caller's transaction on ``connection`` through
    ``backend`` (first opened by ``opened()``, the queue's first use: its recovery and
    migration, on its own connection); log each. ConfigError for a backend that cannot."""
    if not isinstance(backend, CallerTransactionBackend):
        raise ConfigError(
            "enqueue(connection=...) stores jobs inside the caller's PostgreSQL "
            f"transaction, and the queue at {backend.location} is not in PostgreSQL: a "
            "folder has no transaction to join. Enqueue without connection= (the job is "
            "stored when enqueue returns), or use a postgresql:// queue"
        )
    opened()
    stored = backend.put_in_transaction(connection, records, fresh)
    for record, is_new in stored:
        if is_new:
            log.info(
                "Enqueued job %s (%s) in the caller's transaction: stored when it commits",
                record.job_id,
                record.type,
            )
        else:
            log.info(
                "Job %s already exists (%s); not enqueued again",
                record.job_id,
                record.status.value,
            )
    return stored
