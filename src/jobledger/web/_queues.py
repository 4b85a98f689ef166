"""Named queues as the dashboard shows them, in one place: a job's queue, the jobs per
queue and status, and each queue's limits."""

from __future__ import annotations

from .._job_view import Job
from .._limits import Limits
from .._queue import JobQueue

__all__ = ["counts_by_queue", "job_queue", "limits"]


def job_queue(job: Job) -> str:
    """The queue ``job`` is in."""
    return job.queue


def counts_by_queue(queue: JobQueue, counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Jobs per queue, then per status (``counts``, the queue's jobs per status already
    read, stands for a queue that has no named queues' counts yet)."""
    return queue.counts_by_queue() or {"default": dict(counts)}


def limits(queue: JobQueue) -> Limits:
    """Each queue's limit and each type's rate limit."""
    return queue.limits()
