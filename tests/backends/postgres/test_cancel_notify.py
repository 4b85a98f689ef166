"""A cancel reaches a worker in another process by NOTIFY: the worker looks for cancel
requests once an hour (``cancel_poll=3600``), so only the notification can tell its
handler within the test's bounds. The parent waits on pipes, or polls pg_stat_activity
(server state) in a bounded loop; it never sleeps to synchronise.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.backends.postgres._pg import require_psycopg, until

require_psycopg()

import psycopg  # noqa: E402

from jobledger import Job, JobQueue, JobStatus, Worker  # noqa: E402
from tests._child import Channel, Child  # noqa: E402


def _listening_for_cancels(url: str) -> bool:
    """Whether a session of this database waits on the cancel channel."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query = 'LISTEN jobledger_cancels'"
        ).fetchone()
    return bool(row and row[0] == 1)


def _long_job_worker(url: str) -> Callable[[Channel], None]:
    def target(chan: Channel) -> None:
        queue = JobQueue(url, durability="flush")

        def train(job: Job) -> None:
            chan.send("started")
            assert job.attempt is not None
            if not job.attempt.cancel.wait(120):
                chan.send("never told")
            chan.send("told")
            job.check()  # raises JobCancelled: the job ends Cancelled

        worker = Worker(
            queue, {"train": train}, poll_interval=3600, cancel_poll=3600, handle_signals=False
        )
        worker.run(until_empty=True)
        queue.close()

    return target


def test_a_cancel_reaches_a_worker_in_another_process_by_notify(pg_url):
    with JobQueue(pg_url, durability="flush") as q:
        q.enqueue({"type": "train"}, job_id="long", max_attempts=3)
        child = Child(_long_job_worker(pg_url))
        try:
            child.read_until("started")
            until(lambda: _listening_for_cancels(pg_url), 30, "listening for cancels")
            asked = q.cancel("long")
            assert asked.status is JobStatus.RUNNING
            assert child.readline() == "told"
            child.check()
        finally:
            child.close()
        job = q.get("long")
        assert job is not None and job.status is JobStatus.CANCELLED and job.attempts == 1
