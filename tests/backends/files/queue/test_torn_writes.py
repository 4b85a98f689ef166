"""A worker killed between a job file write and the queue.json write that follows it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobledger import JobQueue, JobStatus
from jobledger._faults import arm
from tests._child import Channel, Child

from ._procs import job_files, queue_doc


def _claim_then_die_in(qdir: Path, action: str):
    def target(chan: Channel) -> None:
        queue = JobQueue(qdir, durability="flush")
        job = queue.claim()
        chan.send(f"claimed {job.job_id}")
        arm("files.temp_written", 2)  # dies before the index write after the job file
        if action == "complete":
            queue.complete(job.job_id, "result")
        else:
            queue.fail(job.job_id, "boom")
        chan.send("not killed")

    return target


@pytest.mark.parametrize("action", ["complete", "fail"])
@pytest.mark.parametrize("already_open", [True, False])
def test_counts_and_index_follow_the_job_file_after_a_kill_between_the_writes(
    tmp_path, action, already_open
):
    qdir = tmp_path / "q"
    watcher = JobQueue(qdir, durability="flush", recover_every=0)
    watcher.enqueue({"type": "T"}, job_id="j", max_attempts=1)
    watcher.enqueue({"type": "T"}, job_id="other", priority=-1)
    if not already_open:
        watcher.close()
    child = Child(_claim_then_die_in(qdir, action))
    assert child.read_until("claimed ") == "j"
    assert child.drain() == []
    assert os.WIFSIGNALED(child.wait())
    final = "Completed" if action == "complete" else "Failed"
    assert job_files(qdir)["j"]["status"] == final
    assert "j" in queue_doc(qdir)["running"]  # the index is behind the file
    q = watcher if already_open else JobQueue(qdir, durability="flush", recover_every=0)
    q.recover()
    expected = {"Queued": 1, "Running": 0, "Completed": 0, "Failed": 0, "Cancelled": 0}
    expected[final] = 1
    assert q.counts() == expected
    assert [j.job_id for j in q.list(JobStatus.RUNNING)] == []
    job = q.claim()
    assert job.job_id == "other"
    q.complete("other")
    expected["Queued"], expected["Completed"] = 0, expected["Completed"] + 1
    assert q.counts() == expected
    assert queue_doc(qdir)["running"] == [] and queue_doc(qdir)["queued"] == []
    q.close()
    with JobQueue(qdir, durability="flush") as fresh:
        assert fresh.counts() == expected
