"""Named queues as the dashboard shows them, in one place: a job's queue, the jobs per
queue and status, and each queue's limits. Queues that the API does not know of yet
read as one, ``default``; once ``JobQueue.counts_by_queue()`` and ``JobQueue.limits()``
exist, these use them."""

from __future__ import annotations

from typing import Any

from .._job_view import Job
from .._queue import JobQueue
from ..backends._history import queue_of

__all__ = ["counts_by_queue", "job_queue", "limits"]


def job_queue(job: Job) -> str:
    """The queue ``job`` is in (``default`` when it names none)."""
    queue = getattr(job, "queue", None)
    return queue if isinstance(queue, str) else queue_of(job.raw)


def counts_by_queue(queue: JobQueue, counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Jobs per queue, then per status: the API's when it has them, else every job in
    ``default`` (``counts``: the queue's jobs per status, already read)."""
    by_queue = getattr(queue, "counts_by_queue", None)
    if callable(by_queue):
        found: dict[str, dict[str, int]] = by_queue()
        return found
    return {"default": dict(counts)}


def limits(queue: JobQueue) -> dict[str, Any]:
    """Each queue's limits (the API's ``limits()``), or none when it has none."""
    read = getattr(queue, "limits", None)
    if callable(read):
        found: dict[str, Any] = read()
        return found
    return {}
