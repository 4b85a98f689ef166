"""Running a Worker past a delay on the injected clock, without sleeping.

``run(until_empty=True, wait_delayed=True)`` must keep waiting while a job is delayed and
finish once the clock passes its due time. The test needs to know that the Worker has
looked and found the job not due before it moves the clock: the queue's
``queued_by_type`` (what the Worker asks) is wrapped to signal an event then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from jobledger import JobQueue, JobStatus, Worker

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def run_past_delay(
    q: JobQueue, job_type: str, handler: Callable[[Any], Any], job_id: str, clock: Any
) -> Worker:
    """Run a Worker until empty (waiting for delayed jobs), move ``clock`` an hour on
    once it has seen ``job_id`` delayed, and return the stopped Worker."""
    seen_delayed = threading.Event()
    real = q.queued_by_type

    def queued_by_type() -> Any:
        counts = real()
        if counts.get(job_type) and counts[job_type].delayed:
            seen_delayed.set()  # the worker has looked and found the job not due
        return counts

    q.queued_by_type = queued_by_type  # type: ignore[method-assign]
    worker = Worker(q, {job_type: handler}, handle_signals=False, poll_interval=0.01)
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True, "wait_delayed": True})
    runner.start()
    try:
        assert seen_delayed.wait(WAIT)
        assert runner.is_alive() and q.get(job_id).status is JobStatus.QUEUED
        clock.advance(hours=1)
        worker.wake()
        runner.join(WAIT)
        assert not runner.is_alive()
    finally:
        worker.stop()
        runner.join(WAIT)
    return worker
