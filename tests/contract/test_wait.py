"""``JobQueue.wait``, and the limit on a stored result, on every backend.

What the wait answers for each outcome (a result, JobFailed, JobCancelled, WaitTimeout,
JobNotFound), that it only reads, and that a finish through the same queue object wakes
it without a poll. Waits across processes on PostgreSQL (woken by NOTIFY alone) are in
tests/backends/postgres/test_wait_notify.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import jobledger
from jobledger import (
    MAX_RESULT_BYTES,
    InvalidPayload,
    JobCancelled,
    JobFailed,
    JobLedgerError,
    JobNotFound,
    JobStatus,
    WaitTimeout,
    Worker,
    _waiting,
)
from tests.backends.files._snapshot import snapshot

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def test_a_completed_jobs_result_is_returned(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    q.claim()
    q.complete(job_id, {"answer": [4, 2]})
    assert q.wait(job_id) == {"answer": [4, 2]}
    assert make_queue().wait(job_id, timeout=0) == {"answer": [4, 2]}  # another reader


def test_a_failed_job_raises_job_failed_with_its_error_and_traceback(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=1)
    q.claim()
    try:
        raise ValueError("the model file is missing")
    except ValueError as exc:
        q.fail(job_id, exc)
    with pytest.raises(JobFailed) as caught:
        make_queue().wait(job_id)
    failed = caught.value
    assert isinstance(failed, JobLedgerError)
    assert failed.job_id == job_id and failed.attempts == 1
    assert failed.error_message == "ValueError: the model file is missing"
    assert failed.traceback is not None and "Traceback (most recent call last)" in failed.traceback
    text = str(failed)
    assert job_id in text and "the model file is missing" in text
    assert 'raise ValueError("the model file is missing")' in text  # the traceback's line


def test_a_job_still_to_be_retried_is_waited_for_not_failed(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=2)
    q.claim()
    q.fail(job_id, "first attempt")
    with pytest.raises(WaitTimeout) as caught:
        q.wait(job_id, timeout=0)
    assert caught.value.status == "Queued"


def test_a_cancelled_job_raises_job_cancelled(make_queue):
    q = make_queue()
    queued = q.enqueue({"type": "T"})
    running = q.enqueue({"type": "T"})
    q.cancel(queued)
    q.claim()
    q.cancel(running)  # Running: asked of its worker, which then ends it Cancelled
    q.fail(running, jobledger.JobCancelled(running))
    for job_id in (queued, running):
        with pytest.raises(jobledger.JobCancelled) as caught:
            make_queue().wait(job_id)
        assert caught.value.job_id == job_id and job_id in str(caught.value)


def test_a_wait_that_runs_out_raises_a_timeout_error_and_changes_nothing(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    reader = make_queue()
    for timeout in (0, 0.05):
        with pytest.raises(TimeoutError) as caught:
            reader.wait(job_id, timeout=timeout)
        assert isinstance(caught.value, WaitTimeout) and isinstance(caught.value, JobLedgerError)
        assert caught.value.job_id == job_id and caught.value.status == "Queued"
        assert job_id in str(caught.value) and "Queued" in str(caught.value)
    again = q.get(job_id)
    assert again.status is JobStatus.QUEUED and again.attempts == 0


def test_an_unknown_id_raises_job_not_found(make_queue):
    q = make_queue()
    q.enqueue({"type": "T"})
    with pytest.raises(JobNotFound) as caught:
        make_queue().wait("no-such-job", timeout=WAIT)
    assert "no-such-job" in str(caught.value)


def test_wait_checks_its_durations(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    for bad in ({"timeout": -1}, {"poll_interval": 0}, {"poll_interval": "1s"}):
        with pytest.raises(jobledger.ConfigError):
            q.wait(job_id, **bad)


def test_waiting_only_reads_a_dead_workers_job_stays_running(make_queue):
    first = make_queue()
    job_id = first.enqueue({"type": "T"})
    first.claim()
    first.close()  # its worker is gone; its job reads Running until a writer recovers it
    before = snapshot(Path(make_queue.location)) if make_queue.backend == "files" else None
    reader = make_queue()
    with pytest.raises(WaitTimeout) as caught:
        reader.wait(job_id, timeout=0.05)
    assert caught.value.status == "Running"
    reader.close()
    if before is not None:
        assert snapshot(Path(make_queue.location)) == before
    assert make_queue().get(job_id).status is JobStatus.RUNNING


def test_a_finish_through_the_same_queue_wakes_the_wait_without_polling(
    make_queue, monkeypatch, clock
):
    # An hour before the first and every later look: only the wake-up of a finished job
    # can end this wait within the test's bounds.
    monkeypatch.setattr(_waiting, "FIRST_POLL", 3600.0)
    q = make_queue()
    done, failed, cancelled = q.enqueue_many(
        [{"type": "T"}] * 3, job_ids=["d", "f", "c"], max_attempts=2
    )
    q.claim_many(3)
    outcomes: dict[str, object] = {}
    reads = threading.Semaphore(0)
    read = q.backend.get

    def counted(job_id: str):
        record = read(job_id)
        reads.release()
        return record

    monkeypatch.setattr(q.backend, "get", counted)

    def wait(job_id: str) -> None:
        try:
            outcomes[job_id] = q.wait(job_id, timeout=WAIT, poll_interval=3600)
        except JobLedgerError as exc:
            outcomes[job_id] = exc

    threads = [threading.Thread(target=wait, args=(i,)) for i in (done, failed, cancelled)]
    for t in threads:
        t.start()
    for _ in threads:  # each has read its job Running: it now waits for a wake-up
        assert reads.acquire(timeout=WAIT)
    q.complete(done, "ok")
    q.fail(failed, "boom")  # max_attempts 2: Queued again, not finished...
    q.cancel(cancelled)  # Running: asked of its worker, which then ends it Cancelled
    q.fail(cancelled, JobCancelled(cancelled))
    for t in (threads[0], threads[2]):
        t.join(WAIT)
    assert outcomes[done] == "ok"
    assert isinstance(outcomes[cancelled], JobCancelled)
    assert failed not in outcomes and threads[1].is_alive()  # ...so it still waits
    clock.advance(seconds=60)  # past the retry's backoff
    assert q.claim().job_id == failed
    q.fail(failed, "boom")  # the second attempt: Failed for good
    threads[1].join(WAIT)
    assert isinstance(outcomes[failed], JobFailed) and "boom" in str(outcomes[failed])


def test_a_worker_in_this_process_wakes_a_wait(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Add", "x": 2, "y": 3})
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(make_queue().wait(job_id, timeout=WAIT)))
    waiter.start()
    Worker(q, {"Add": lambda j: j.payload["x"] + j.payload["y"]}, handle_signals=False).run(
        until_empty=True
    )
    waiter.join(WAIT)
    assert got == [5]


# -- the size of a result ------------------------------------------------------------------


def test_a_result_over_the_limit_is_refused_naming_the_job_and_the_limit(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    q.claim()
    with pytest.raises(InvalidPayload) as caught:
        q.complete(job_id, "x" * MAX_RESULT_BYTES)  # its JSON has two quotes more
    text = str(caught.value)
    assert job_id in text and f"{MAX_RESULT_BYTES:,}" in text and "MAX_RESULT_BYTES" in text
    assert isinstance(caught.value, TypeError)
    assert q.get(job_id).status is JobStatus.RUNNING  # nothing was stored
    with pytest.raises(InvalidPayload, match=job_id):
        q.complete_many({job_id: ["x" * (MAX_RESULT_BYTES // 2)] * 2})
    q.complete(job_id, "fits")
    assert q.wait(job_id) == "fits"


def test_a_handler_whose_result_is_too_big_fails_its_attempt(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Big"}, max_attempts=1)
    Worker(q, {"Big": lambda j: {"blob": "x" * MAX_RESULT_BYTES}}, handle_signals=False).run(
        until_empty=True
    )
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and job.result is None
    assert job_id in job.error_message and f"{MAX_RESULT_BYTES:,}" in job.error_message
    with pytest.raises(JobFailed, match="MAX_RESULT_BYTES"):
        q.wait(job_id)
