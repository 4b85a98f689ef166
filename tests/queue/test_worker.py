"""Worker behaviours in one process: results, retries with backoff on a fake clock."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from jobledger import JobLedgerError, JobQueue, JobStatus, Worker
from jobledger._clock import iso_utc

WAIT = 30  # seconds: only a bound on a hang, never a synchronisation


def test_the_handlers_return_value_is_stored_as_the_result(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    a = q.enqueue({"type": "Add", "x": 2, "y": 3})
    b = q.enqueue({"type": "Upper", "s": "abc"})
    c = q.enqueue({"type": "Nothing"})
    Worker(
        q,
        {
            "Add": lambda j: j.payload["x"] + j.payload["y"],
            "Upper": lambda j: {"s": j.payload["s"].upper()},
            "Nothing": lambda j: None,
        },
        handle_signals=False,
    ).run(until_empty=True)
    assert q.get(a).result == 5
    assert q.get(b).result == {"s": "ABC"}
    assert q.get(c).result is None
    assert {q.get(i).status for i in (a, b, c)} == {JobStatus.COMPLETED}
    assert q.counts()["Completed"] == 3
    q.close()


def test_jobs_of_types_without_a_handler_are_left_alone(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    other = q.enqueue({"type": "Other"})
    mine = q.enqueue({"type": "Mine"})
    Worker(q, {"Mine": lambda j: "ok"}, handle_signals=False).run(until_empty=True)
    assert q.get(mine).status is JobStatus.COMPLETED
    assert q.get(other).status is JobStatus.QUEUED and q.get(other).attempts == 0
    q.close()


def test_a_worker_needs_handlers_and_a_positive_concurrency(tmp_path):
    q = JobQueue(tmp_path / "q", durability="flush")
    with pytest.raises(JobLedgerError):
        Worker(q, {})
    with pytest.raises(JobLedgerError):
        Worker(q, {"T": print}, concurrency=0)


def test_an_exception_retries_with_exponential_backoff_then_fails(tmp_path, clock):
    q = JobQueue(
        tmp_path / "q", durability="flush", clock=clock, retry_delay=10, max_retry_delay=1000
    )
    job_id = q.enqueue({"type": "Flaky"}, max_attempts=4)
    attempts: list[int] = []
    failed = threading.Semaphore(0)
    original_fail = q.fail

    def fail(job_id, error):  # observe each recorded failure
        try:
            return original_fail(job_id, error)
        finally:
            failed.release()

    q.fail = fail  # type: ignore[method-assign]

    def handler(job):
        attempts.append(job.attempts)
        raise RuntimeError(f"boom {job.attempts}")

    worker = Worker(q, {"Flaky": handler}, handle_signals=False, poll_interval=0.01)
    # wait_delayed: each retry is delayed, and until_empty alone stops when nothing is due
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True, "wait_delayed": True})
    runner.start()
    try:
        for n, delay in [(1, 10), (2, 20), (3, 40)]:
            assert failed.acquire(timeout=WAIT)
            job = q.get(job_id)
            assert job.status is JobStatus.QUEUED
            assert job.attempts == n
            assert job.error_message == f"RuntimeError: boom {n}"
            assert job.run_after == iso_utc(clock.now() + dt.timedelta(seconds=delay))
            assert attempts == list(range(1, n + 1))  # not retried before it is due
            clock.advance(seconds=delay)
            worker.wake()
        assert failed.acquire(timeout=WAIT)
        runner.join(WAIT)
        assert not runner.is_alive()
    finally:
        worker.stop()
        runner.join(WAIT)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 4 and attempts == [1, 2, 3, 4]
    assert job.error_message == "RuntimeError: boom 4"
    assert q.counts()["Failed"] == 1 and q.counts()["Queued"] == 0
    q.close()


def test_a_result_json_cannot_hold_fails_the_job_with_a_clear_message(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    job_id = q.enqueue({"type": "T"}, max_attempts=1)
    Worker(q, {"T": lambda j: object()}, handle_signals=False).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert "not JSON-serialisable" in job.error_message
    assert job.result is None
    q.close()


def test_concurrent_threads_run_each_job_once(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(60)])
    seen: list[str] = []
    guard = threading.Lock()

    def handler(job):
        with guard:
            seen.append(job.job_id)
        return job.payload["i"]

    Worker(q, {"T": handler}, concurrency=4, handle_signals=False).run(until_empty=True)
    assert sorted(seen) == sorted(ids)
    assert all(q.get(i).result == n for n, i in enumerate(ids))
    q.close()


def test_batches_run_each_job_once_and_record_completions_at_the_batch_end(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(25)], max_attempts=1)
    seen: list[str] = []
    states_of_first: list[JobStatus] = []

    def handler(job):
        seen.append(job.job_id)
        if job.payload["i"] == 2:
            # Inside the first batch: job 0 has run but its completion is not recorded yet.
            states_of_first.append(q.get(ids[0]).status)
        if job.payload["i"] == 7:
            raise RuntimeError("seven fails")  # a failure is recorded at once
        return job.payload["i"]

    Worker(q, {"T": handler}, batch_size=5, handle_signals=False).run(until_empty=True)
    assert sorted(seen) == sorted(ids)
    assert states_of_first == [JobStatus.RUNNING]
    assert all(q.get(i).result == n for n, i in enumerate(ids) if n != 7)
    assert q.get(ids[7]).status is JobStatus.FAILED
    assert q.counts()["Completed"] == 24
    q.close()


def test_batches_from_several_threads_run_each_job_once(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(90)])
    seen: list[str] = []
    guard = threading.Lock()

    def handler(job):
        with guard:
            seen.append(job.job_id)
        return job.payload["i"]

    worker = Worker(q, {"T": handler}, concurrency=3, batch_size=7, handle_signals=False)
    worker.run(until_empty=True)
    assert sorted(seen) == sorted(ids)
    assert worker.processed == 90
    assert all(q.get(i).result == n for n, i in enumerate(ids))
    q.close()


def test_stopping_mid_batch_records_what_ran_and_gives_back_the_rest_uncounted(tmp_path, clock):
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    ids = q.enqueue_many([{"type": "T", "i": i} for i in range(6)])
    worker: Worker

    def handler(job):
        if job.payload["i"] == 1:
            worker.stop()  # as SIGTERM does
        return job.payload["i"]

    worker = Worker(q, {"T": handler}, batch_size=4, handle_signals=False)
    worker.run()
    assert [q.get(i).status for i in ids[:2]] == [JobStatus.COMPLETED] * 2
    for job_id in ids[2:4]:  # claimed in the batch, never started: back, first, uncounted
        job = q.get(job_id)
        assert job.status is JobStatus.QUEUED and job.attempts == 0
    assert [q.get(i).status for i in ids[4:]] == [JobStatus.QUEUED] * 2
    assert [j.job_id for j in q.list(JobStatus.QUEUED)] == ids[2:]
    assert worker.processed == 2
    q.close()


def test_batch_size_must_be_positive(tmp_path):
    q = JobQueue(tmp_path / "q", durability="flush")
    with pytest.raises(JobLedgerError, match="batch_size"):
        Worker(q, {"T": print}, batch_size=0)


def test_a_claim_not_yet_started_keeps_the_worker_from_calling_the_queue_drained(tmp_path, clock):
    # Two threads: one claims the only job and is held just after its claim; the other
    # finds nothing and asks whether the queue is drained. It is not: a job is claimed
    # here, not yet started. (Answering yes stopped the worker and gave the job back.)
    q = JobQueue(tmp_path / "q", durability="flush", clock=clock)
    q.enqueue({"type": "T"}, job_id="only")
    claimed, release = threading.Event(), threading.Event()
    real_claim = q.claim_many

    def claim_many(limit, worker=None, types=None):
        jobs = real_claim(limit, worker=worker, types=types)
        if jobs:
            claimed.set()
            assert release.wait(WAIT)
        return jobs

    q.claim_many = claim_many
    worker = Worker(
        q, {"T": lambda j: "ran"}, concurrency=2, poll_interval=0.01, handle_signals=False
    )
    verdicts: list[bool] = []
    real_drained = worker._drained

    def drained(types):
        verdict = real_drained(types)
        verdicts.append(verdict)
        if claimed.is_set():
            release.set()  # the other thread has looked while the claim was held
        return verdict

    worker._drained = drained
    worker.run(until_empty=True)
    assert verdicts[0] is False
    assert q.get("only").status is JobStatus.COMPLETED and q.get("only").result == "ran"
    q.close()
