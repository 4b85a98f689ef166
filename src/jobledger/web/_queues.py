"""Named queues as the dashboard shows them, in one place: a job's queue, the jobs per
queue and status, and each queue's limits."""

from __future__ import annotations

from .._job_view import Job
from .._limits import Limits
from .._queue import JobQueue
from .._queue_pages import LivePage

__all__ = ["counts_by_queue", "job_queue", "limits"]


def job_queue(job: Job) -> str:
    """The queue ``job`` is in."""
    return job.queue


def counts_by_queue(page: LivePage) -> dict[str, dict[str, int]]:
    """Jobs per queue, then per status, from a page's bounded counts (an empty queue
    shows as ``default`` with none)."""
    return page.by_queue or {"default": dict(page.counts)}


def limits(queue: JobQueue) -> Limits:
    """Each queue's limit and each type's rate limit."""
    return queue.limits()
