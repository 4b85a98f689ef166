"""A Job's running attempt as its handler sees it: check(), deadline, cancel_requested,
and progress/checkpoint refused outside a Worker's attempt."""

from __future__ import annotations

import pytest

from jobledger import Job, JobCancelled, JobLedgerError, JobStatus, JobTimeout
from jobledger._job_attempt import Attempt


def _job() -> Job:
    return Job(
        job_id="j1", type="T", status=JobStatus.RUNNING, payload={}, attempts=1,
        max_attempts=3, priority=0, error_message=None, result=None, worker="w",
        created=None, started=None, finished=None, run_after=None, raw={},
    )  # fmt: skip


def test_outside_an_attempt_check_does_nothing_and_progress_is_refused():
    job = _job()
    job.check()
    assert job.deadline is None and not job.cancel_requested
    with pytest.raises(JobLedgerError, match="j1: progress"):
        job.progress(1, 2)
    with pytest.raises(JobLedgerError, match="j1: checkpoint"):
        job.checkpoint({"epoch": 1})


def test_check_raises_past_the_deadline_by_the_injected_clock():
    now = [1000.0]
    job = _job().with_attempt(Attempt("j1", timeout=5, deadline=1005.0, clock=lambda: now[0]))
    job.check()
    assert job.deadline is not None and job.deadline.timestamp() == 1005.0
    now[0] = 1005.0
    with pytest.raises(JobTimeout, match="timed out after 5 s"):
        job.check()


def test_a_cancel_request_is_seen_and_raised_before_a_timeout():
    attempt = Attempt("j1", timeout=1, deadline=0.0, clock=lambda: 10.0)
    job = _job().with_attempt(attempt)
    attempt.cancel.set()
    assert job.cancel_requested
    with pytest.raises(JobCancelled, match="j1 was cancelled"):
        job.check()


def test_progress_and_checkpoint_reach_the_attempts_sinks():
    seen: list[object] = []
    attempt = Attempt(
        "j1",
        on_progress=lambda d, t, n: seen.append((d, t, n)),
        on_checkpoint=seen.append,
    )
    job = _job().with_attempt(attempt)
    job.progress(3, 10, "epoch 3")
    job.checkpoint({"epoch": 3})
    assert seen == [(3, 10, "epoch 3"), {"epoch": 3}]
