"""A checkpoint that returned survives its worker's death: a worker process is SIGKILLed
right after ``job.checkpoint({"epoch": 3})`` returned, and the job's next attempt, run
by another worker, finds ``checkpoint_data == {"epoch": 3}``. On every backend, under
``durability="fsync"``. The parent waits on the child's pipe, never on time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import jobledger
from jobledger import Job, JobQueue, JobStatus

from .._child import Channel, Child


@pytest.fixture(params=["files", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "files":
        return str(tmp_path / "queue")
    return str(request.getfixturevalue("pg_url"))


def _checkpointing_worker(where: str) -> Any:
    """The child: a Worker whose handler checkpoints epochs 1 to 3, says so once the
    third returned, and then waits to be killed."""

    def target(chan: Channel) -> None:
        queue = JobQueue(where, durability="fsync")

        def train(job: Job) -> None:
            assert job.checkpoint_data is None  # a first run
            for epoch in (1, 2, 3):
                job.progress(epoch, 10)
                job.checkpoint({"epoch": epoch})
            chan.send("checkpointed")
            threading.Event().wait()  # killed here, mid-attempt

        jobledger.Worker(queue, {"train": train}, handle_signals=False).run()

    return target


def test_a_checkpoint_that_returned_is_what_the_next_attempt_resumes_from(where):
    with JobQueue(where, durability="fsync") as q:
        q.enqueue({"type": "train", "model": "m"}, job_id="fine-tune")
    with Child(_checkpointing_worker(where)) as child:
        child.read_until("checkpointed")
        child.kill()

    seen: list[tuple[int, Any, Any]] = []

    def resume(job: Job) -> str:
        done = job.progress_info.done if job.progress_info is not None else None
        seen.append((job.attempts, job.checkpoint_data, done))
        return "trained"

    with JobQueue(where, durability="fsync") as q:
        # The first use recovers the dead worker's job (files: its OS lock is gone;
        # PostgreSQL: its session ended), and this worker claims it again.
        jobledger.Worker(q, {"train": resume}, handle_signals=False).run(until_empty=True)
        # The progress held when the checkpoint was stored went with it, in one write.
        assert seen == [(2, {"epoch": 3}, 3.0)]
        job = q.get("fine-tune")
        assert job is not None and job.status is JobStatus.COMPLETED
        assert job.result == "trained"
