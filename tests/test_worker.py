"""Worker behaviours in one process: results, retries with backoff on a fake clock.

Every test runs on each backend (``make_queue``, tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import threading

import pytest

from jobledger import JobCancelled, JobLedgerError, JobStatus, Worker
from jobledger._clock import iso_utc
from jobledger._worker_report import JobReporter

from ._delayed import run_past_delay

WAIT = 30  # seconds: only a bound on a hang, never a synchronisation


def test_the_handlers_return_value_is_stored_as_the_result(make_queue):
    q = make_queue()
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


def test_jobs_of_types_without_a_handler_are_left_alone(make_queue):
    q = make_queue()
    other = q.enqueue({"type": "Other"})
    mine = q.enqueue({"type": "Mine"})
    Worker(q, {"Mine": lambda j: "ok"}, handle_signals=False).run(until_empty=True)
    assert q.get(mine).status is JobStatus.COMPLETED
    assert q.get(other).status is JobStatus.QUEUED and q.get(other).attempts == 0
    q.close()


def test_a_worker_needs_handlers_and_a_positive_concurrency(make_queue):
    q = make_queue()
    with pytest.raises(JobLedgerError):
        Worker(q, {})
    with pytest.raises(JobLedgerError):
        Worker(q, {"T": print}, concurrency=0)


def test_an_exception_retries_with_exponential_backoff_then_fails(make_queue, clock):
    q = make_queue(retry_delay=10, max_retry_delay=1000)
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


def test_a_result_json_cannot_hold_fails_the_job_with_a_clear_message(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=1)
    Worker(q, {"T": lambda j: object()}, handle_signals=False).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert "not JSON-serialisable" in job.error_message
    assert job.result is None
    q.close()


def test_concurrent_threads_run_each_job_once(make_queue):
    q = make_queue()
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


def test_batches_run_each_job_once_and_record_completions_at_the_batch_end(make_queue):
    q = make_queue()
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

    # A clock that stands still: the 50 ms bound never records before the batch ends.
    Worker(q, {"T": handler}, batch_size=5, handle_signals=False, monotonic=lambda: 0.0).run(
        until_empty=True
    )
    assert sorted(seen) == sorted(ids)
    assert states_of_first == [JobStatus.RUNNING]
    assert all(q.get(i).result == n for n, i in enumerate(ids) if n != 7)
    assert q.get(ids[7]).status is JobStatus.FAILED
    assert q.counts()["Completed"] == 24
    q.close()


def _calls(q, order):
    """Note, in ``order``, each claim, failure and record the queue is asked for."""
    claim, fail, both = q.claim_many, q.fail, q._record_and_claim

    def claim_many(limit, worker=None, types=None):
        jobs = claim(limit, worker=worker, types=types)
        order.append(("claim", [j.job_id for j in jobs]))
        return jobs

    def failing(job_id, error):
        order.append(("fail", job_id))
        return fail(job_id, error)

    def record_and_claim(results, limit, types):
        jobs, recorded, conflict = both(results, limit, types)
        order.append(("record and claim", [i for i, _ in results], [j.job_id for j in jobs]))
        return jobs, recorded, conflict

    def refuse(*args):
        raise AssertionError("a completion recorded on its own, not with the next claim")

    q.claim_many, q.fail, q._record_and_claim = claim_many, failing, record_and_claim
    q.complete = q.record_completions = q.complete_many = refuse


def test_a_batchs_completions_are_recorded_with_the_next_claim(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 5, job_ids=["a", "b", "c", "d", "e"], max_attempts=1)
    order: list[tuple] = []
    _calls(q, order)

    def handler(job):
        if job.job_id == "c":
            raise RuntimeError("c fails")  # a failure is recorded at once, on its own
        return job.job_id

    worker = Worker(q, {"T": handler}, batch_size=2, handle_signals=False, monotonic=lambda: 0.0)
    worker.run(until_empty=True)
    assert order == [
        ("claim", ["a", "b"]),
        ("record and claim", ["a", "b"], ["c", "d"]),
        ("fail", "c"),
        ("record and claim", ["d"], ["e"]),
        ("record and claim", ["e"], []),  # the last, with the claim that finds nothing
    ]
    assert worker.processed == 4
    assert [q.get(i).status for i in "abcde"] == [JobStatus.COMPLETED] * 2 + [JobStatus.FAILED] + [
        JobStatus.COMPLETED
    ] * 2
    q.close()


def test_a_completion_refused_with_the_next_claim_is_reported_and_not_counted(make_queue, caplog):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 3, job_ids=["a", "b", "c"])

    def handler(job):
        if job.job_id == "b":
            # Its attempt ended meanwhile (Cancelled, as a worker ends one whose cancel
            # was asked): the result it returns anyway is refused.
            q.fail("b", JobCancelled("b"))
        return job.job_id

    caplog.set_level(logging.INFO)
    worker = Worker(q, {"T": handler}, batch_size=3, handle_signals=False, monotonic=lambda: 0.0)
    worker.run(until_empty=True)
    assert worker.processed == 2
    assert [q.get(i).status for i in "abc"] == [
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.COMPLETED,
    ]
    said = [r.getMessage() for r in caplog.records]
    assert any("1 of 3 completions were refused" in m and "b:" in m for m in said), said
    assert any("its completion was refused" in m and "b" in m for m in said), said
    q.close()


# The error ends the worker's thread, as any error of a claim does (threading reports it).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_completions_a_failed_claim_did_not_record_are_recorded_at_the_stop(make_queue):
    q = make_queue()
    q.enqueue_many([{"type": "T"}] * 2, job_ids=["a", "b"])
    both = q._record_and_claim
    tries: list[list[str]] = []

    def record_and_claim(results, limit, types):
        tries.append([job_id for job_id, _ in results])
        if len(tries) == 1:
            worker.stop()  # then the thread ends on the error, the worker stops
            raise JobLedgerError("the storage refused the claim")
        return both(results, limit, types)

    q._record_and_claim = record_and_claim
    worker = Worker(
        q,
        {"T": lambda job: job.job_id},
        batch_size=1,
        handle_signals=False,
        monotonic=lambda: 0.0,
    )
    worker.run(until_empty=True)
    assert tries == [["a"]]
    # Not lost with the failed call: recorded when the worker stopped.
    assert q.get("a").status is JobStatus.COMPLETED and q.get("a").result == "a"
    assert q.get("b").status is JobStatus.QUEUED
    assert worker.processed == 1
    q.close()


def test_batches_from_several_threads_run_each_job_once(make_queue):
    q = make_queue()
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


def test_stopping_mid_batch_records_what_ran_and_gives_back_the_rest_uncounted(make_queue):
    q = make_queue()
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


def test_batch_size_must_be_positive(make_queue):
    q = make_queue()
    with pytest.raises(JobLedgerError, match="batch_size"):
        Worker(q, {"T": print}, batch_size=0)


def test_a_claim_not_yet_started_keeps_the_worker_from_calling_the_queue_drained(make_queue):
    # Two threads: one claims the only job and is held just after its claim; the other
    # finds nothing and asks whether the queue is drained. It is not: a job is claimed
    # here, not yet started. (Answering yes stopped the worker and gave the job back.)
    q = make_queue()
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


# -- what the worker says (the jobledger.worker logger) ---------------------------------------


def _worker_lines(caplog, level=logging.INFO):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "jobledger.worker" and r.levelno >= level
    ]


def test_the_worker_logs_its_start_and_a_line_per_finished_job(make_queue, caplog):
    caplog.set_level(logging.INFO, logger="jobledger")
    q = make_queue()
    ok = q.enqueue({"type": "Ok"})
    bad = q.enqueue({"type": "Bad"}, max_attempts=1)
    worker = Worker(
        q, {"Ok": lambda j: 1, "Bad": lambda j: 1 / 0}, concurrency=2, handle_signals=False
    )
    worker.run(until_empty=True)
    lines = _worker_lines(caplog)
    assert lines[0] == (
        f"worker {q.worker_id} serving Bad, Ok from {q.dir}; concurrency 2; "
        "exits when the queue is empty of due jobs"
    )
    assert any(re.fullmatch(rf"done {ok} Ok in \d+\.\d\ds", line) for line in lines), lines
    assert any(
        re.fullmatch(
            rf"failed {bad} Bad in \d+\.\d\ds \(for good after 1 attempt\): "
            r"ZeroDivisionError: division by zero",
            line,
        )
        for line in lines
    ), lines
    q.close()


def test_a_failing_handlers_traceback_is_logged_as_a_warning_and_kept(make_queue, caplog):
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=2)

    def deep_inside_the_handler(job):
        raise TypeError("expected str, got int")

    Worker(q, {"T": deep_inside_the_handler}, handle_signals=False).run(until_empty=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    logged = [m for m in warnings if m.startswith(f"Job {job_id} failed")]
    assert len(logged) == 1, warnings
    assert "Traceback (most recent call last):" in logged[0]
    assert "in deep_inside_the_handler" in logged[0]
    assert logged[0].endswith("TypeError: expected str, got int")
    job = q.get(job_id)
    assert (
        job.status is JobStatus.QUEUED and job.error_message == "TypeError: expected str, got int"
    )
    assert job.traceback is not None and "in deep_inside_the_handler" in job.traceback
    doc = make_queue.document(q, job_id)  # on files: jobs/<id>.json as read from disk
    assert doc["_jobledger"]["traceback"] == job.traceback
    q.close()


def test_queued_types_without_a_handler_are_warned_about_once_each(make_queue, caplog):
    q = make_queue()
    q.enqueue({"type": "Other"})
    q.enqueue({"type": "Other"}, run_after=dt.timedelta(hours=1))
    q.enqueue({"type": "Mine"})
    Worker(q, {"Mine": lambda j: "ok"}, handle_signals=False).run(until_empty=True)
    q.enqueue({"type": "Stranger"})
    worker = Worker(q, {"Mine": lambda j: "ok"}, handle_signals=False, poll_interval=0.01)
    worker.run(until_empty=True)
    warned = [m for m in _worker_lines(caplog, logging.WARNING) if "for a handler" in m]
    assert warned == [
        "2 queued jobs of type Other wait for a handler: this worker serves only Mine",
        "2 queued jobs of type Other wait for a handler: this worker serves only Mine",
        "1 queued job of type Stranger waits for a handler: this worker serves only Mine",
    ]  # once per type and worker, though the second worker went idle more than once
    q.close()


def test_until_empty_does_not_wait_for_delayed_jobs_and_says_so(make_queue, caplog):
    caplog.set_level(logging.INFO, logger="jobledger")
    q = make_queue()
    now = q.enqueue({"type": "T"})
    later = q.enqueue({"type": "T"}, run_after=dt.timedelta(hours=2))
    sooner = q.enqueue({"type": "T"}, run_after=dt.timedelta(hours=1))
    worker = Worker(q, {"T": lambda j: "ran"}, handle_signals=False)
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True})
    runner.start()
    runner.join(WAIT)
    stuck = runner.is_alive()
    worker.stop()
    runner.join(WAIT)
    assert not stuck, "until_empty waited for jobs that are not due"
    assert q.get(now).status is JobStatus.COMPLETED
    assert {q.get(i).status for i in (later, sooner)} == {JobStatus.QUEUED}
    first = q.get(sooner).run_after
    assert worker.delayed_left == (2, first)
    assert (
        f"2 jobs are delayed, the next due at {first}; not waiting "
        "(run(until_empty=True, wait_delayed=True) waits for them)"
    ) in _worker_lines(caplog)
    q.close()


def test_until_empty_with_wait_delayed_waits_for_them(make_queue, clock):
    q = make_queue()
    later = q.enqueue({"type": "T"}, run_after=dt.timedelta(hours=1))
    worker = run_past_delay(q, "T", lambda j: "ran", later, clock)
    assert q.get(later).status is JobStatus.COMPLETED and worker.delayed_left is None
    q.close()


class _Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_very_short_jobs_switch_from_lines_to_periodic_summaries(caplog):
    caplog.set_level(logging.INFO, logger="jobledger")
    ticks = _Ticks()
    reporter = JobReporter(burst=3, summary_every=5.0, monotonic=ticks)
    for i in range(3):  # up to the burst within one second: a line each
        reporter.finished(f"j{i}", "T", "done", 0.01)
    assert _worker_lines(caplog) == [f"done j{i} T in 0.01s" for i in range(3)]
    caplog.clear()
    reporter.finished("j3", "T", "done", 0.01)  # the 4th within the second: summaries
    reporter.finished("j4", "T", "failed", 0.01, "(...)")
    assert reporter.summarising
    assert _worker_lines(caplog) == [
        "more than 3 jobs finished within a second: a summary every 5s instead of a line per job"
    ]
    caplog.clear()
    for i in range(5, 25):
        ticks.now += 0.2  # 20 more over 4 s: still summarising, no line yet
        reporter.finished(f"j{i}", "T", "done", 0.01)
    assert _worker_lines(caplog) == []
    ticks.now += 1.0
    reporter.finished("j25", "T", "done", 0.01)  # 5 s into the period: a summary
    assert _worker_lines(caplog) == ["22 completed, 1 failed in the last 5.0s (4.6 jobs/s)"]
    assert reporter.summarising  # 4.6 a second is still above the burst of 3
    caplog.clear()
    ticks.now += 5.0
    reporter.finished("j26", "T", "done", 0.01)
    assert _worker_lines(caplog) == ["1 completed, 0 failed in the last 5.0s (0.2 jobs/s)"]
    assert not reporter.summarising  # a readable pace again: lines per job
    caplog.clear()
    reporter.finished("j27", "T", "done", 0.25)
    assert _worker_lines(caplog) == ["done j27 T in 0.25s"]


def test_going_idle_ends_the_summaries_with_a_last_one(caplog):
    caplog.set_level(logging.INFO, logger="jobledger")
    ticks = _Ticks()
    reporter = JobReporter(burst=1, summary_every=5.0, monotonic=ticks)
    reporter.finished("a", "T", "done", 0.0)
    reporter.finished("b", "T", "done", 0.0)
    ticks.now += 2.0
    caplog.clear()
    reporter.flush()
    assert _worker_lines(caplog) == ["1 completed, 0 failed in the last 2.0s (0.5 jobs/s)"]
    assert not reporter.summarising


def test_a_second_signal_inside_the_first_ones_stop_does_not_hang_the_worker(make_queue):
    # The second Ctrl-C lands while the first one's handler holds an event's lock (inside
    # its set()): it must not wait for that lock, which only the handler it interrupted
    # can release. Without the guard this run never returns (the suite's timeout ends it).
    q = make_queue()
    q.enqueue({"type": "T"}, job_id="a")
    started, release = threading.Event(), threading.Event()

    def handler(job):
        started.set()
        release.wait(60)
        return "ok"

    worker = Worker(q, {"T": handler}, grace_period=60)

    class SignalledInsideSet(threading.Event):
        def set(self) -> None:
            with self._cond:
                if not getattr(self, "fired", False):
                    self.fired = True
                    os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, lock held
                self._flag = True
                self._cond.notify_all()

    worker._stopping = SignalledInsideSet()
    threading.Thread(
        target=lambda: started.wait(60) and os.kill(os.getpid(), signal.SIGINT), daemon=True
    ).start()
    try:
        worker.run()
    finally:
        release.set()
    assert worker.forced_by is signal.SIGINT
    assert q.get("a").status is JobStatus.QUEUED  # given back by the forced stop
    q.close()
