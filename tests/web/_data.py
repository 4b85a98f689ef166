"""Data the dashboard's tests prepare through the public API."""

from __future__ import annotations

from typing import Any

import jobledger


def prepare(queue: jobledger.JobQueue, state: jobledger.JobState) -> dict[str, Any]:
    """A queue with jobs in every status and today's task sets of two accounts; what was
    made, by name."""
    made: dict[str, Any] = {}
    done = queue.enqueue({"type": "Resize", "size": 3}, max_attempts=1, queue="images")
    failed = queue.enqueue({"type": "Resize", "size": 4}, max_attempts=1, queue="images")
    cancelled = queue.enqueue({"type": "Email", "to": "a@example.com"})
    running = queue.enqueue({"type": "Train", "epochs": 3}, priority=5)
    queued = [queue.enqueue({"type": "Email", "to": f"u{i}@example.com"}) for i in range(3)]
    delayed = queue.enqueue({"type": "Report"}, run_after=3600)
    for _ in range(3):
        job = queue.claim(types=["Resize", "Train"])
        assert job is not None
        if job.job_id == done:
            queue.complete(done, {"path": "/tmp/out.png"})
        elif job.job_id == failed:
            queue.fail(failed, ValueError("image too small"))
    queue.cancel(cancelled)
    made.update(
        done=done,
        failed=failed,
        cancelled=cancelled,
        running=running,
        queued=queued,
        delayed=delayed,
    )
    with state.taskset("alice@example.com", "daily", tasks=["a", "b", "c", "d"]) as ts:
        ts.mark_done("a")
        ts.mark_done("b")
    with state.taskset("bob@example.com", "weekly", tasks=["x", "y"]) as ts:
        ts.mark_done("x")
    return made
