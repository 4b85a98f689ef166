"""A Worker's handler that snoozes its job (raises or returns ``jobledger.Snooze``), on
every backend (``make_queue``), in threads and in a process of its own.

The queue's clock is the injected FakeClock: the test moves it past the snooze and runs
the Worker again; nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re

import pytest

from jobledger import JobStatus, Snooze, Worker
from jobledger._clock import iso_utc
from jobledger._worker_report import JobReporter

from ._delayed import run_past_delay

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def _worker_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jobledger.worker"]


def _snoozes_once(how: str, seconds: float | dt.timedelta):
    """A handler that snoozes on its first run (raised or returned), then returns."""
    runs: list[int] = []

    def handler(job):
        runs.append(job.attempts)
        if len(runs) == 1:
            if how == "return":
                return Snooze(seconds)
            raise Snooze(seconds)
        return "woke"

    return handler, runs


@pytest.mark.parametrize("how", ["raise", "return"])
def test_a_snoozed_job_waits_uncounted_and_runs_once_due(make_queue, clock, caplog, how):
    caplog.set_level(logging.INFO, logger="jobledger")
    q = make_queue()
    job_id = q.enqueue({"type": "T"}, max_attempts=1)
    handler, runs = _snoozes_once(how, 30 if how == "raise" else dt.timedelta(seconds=30))
    failed: list[str] = []
    original_fail = q.fail
    q.fail = lambda *a: failed.append(a[0]) or original_fail(*a)  # type: ignore[method-assign]
    worker = Worker(q, {"T": handler}, handle_signals=False)
    worker.run(until_empty=True)  # returns: the snoozed job is delayed, not due
    job = q.get(job_id)
    due = iso_utc(clock.now() + dt.timedelta(seconds=30))
    assert job.status is JobStatus.QUEUED and job.run_after == due
    assert job.attempts == 0 and job.error_message is None and job.traceback is None
    assert worker.delayed_left == (1, due) and failed == []
    assert any(
        re.fullmatch(
            rf"snoozed {job_id} T in \d+\.\d\ds \(snoozed for 30 s, due again at "
            rf"{re.escape(due)}; attempt not counted\)",
            line,
        )
        for line in _worker_lines(caplog)
    ), _worker_lines(caplog)
    clock.advance(seconds=29)
    worker = Worker(q, {"T": handler}, handle_signals=False)  # a Worker runs once
    worker.run(until_empty=True)
    assert runs == [1] and q.get(job_id).status is JobStatus.QUEUED  # not before its time
    assert worker.delayed_left == (1, due)
    clock.advance(seconds=1)
    worker = Worker(q, {"T": handler}, handle_signals=False)
    worker.run(until_empty=True)
    job = q.get(job_id)
    assert runs == [1, 1]  # the same attempt number: the snoozed one was not counted
    assert job.status is JobStatus.COMPLETED and job.result == "woke" and job.attempts == 1
    assert worker.delayed_left is None and failed == []
    q.close()


def test_wait_delayed_waits_for_a_snoozed_job(make_queue, clock):
    q = make_queue()
    job_id = q.enqueue({"type": "T"})
    handler, runs = _snoozes_once("raise", 3600)
    run_past_delay(q, "T", handler, job_id, clock)
    assert runs == [1, 1] and q.get(job_id).status is JobStatus.COMPLETED
    q.close()


@pytest.mark.skipif(os.name != "posix", reason="process isolation's tests are POSIX's")
@pytest.mark.parametrize("how", ["raise", "return"])
def test_a_snooze_in_a_job_s_own_process_comes_back_as_a_snooze(make_queue, clock, how):
    q = make_queue()
    job_id = q.enqueue({"type": "S", "times": 2, "seconds": 45, "how": how}, max_attempts=1)

    def worker() -> Worker:  # a Worker runs once
        return Worker(
            q,
            {"S": "tests._handlers:snooze_until_counted"},
            isolation="process",
            handle_signals=False,
        )

    for count in (1, 2):
        runs = worker()
        runs.run(until_empty=True)
        job = q.get(job_id)
        due = iso_utc(clock.now() + dt.timedelta(seconds=45))
        assert job.status is JobStatus.QUEUED and job.run_after == due, job
        assert job.attempts == 0 and job.error_message is None
        assert job.checkpoint_data == {"snoozes": count}  # what counts them: the handler's
        assert runs.delayed_left == (1, due)
        clock.advance(seconds=45)
    worker().run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED, job
    assert job.result["snoozes"] == 2 and job.result["attempts"] == 1
    assert job.result["pid"] != os.getpid()
    q.close()


def test_summaries_count_snoozes_apart(caplog):
    caplog.set_level(logging.INFO, logger="jobledger")
    now = [100.0]
    reporter = JobReporter(burst=1, summary_every=5.0, monotonic=lambda: now[0])
    reporter.finished("a", "T", "done", 0.0)
    reporter.finished("b", "T", "snoozed", 0.0, "(snoozed for 5 s)")  # summaries now
    reporter.finished("c", "T", "snoozed", 0.0, "(snoozed for 5 s)")
    reporter.finished("d", "T", "failed", 0.0, "(...)")
    now[0] += 2.0
    caplog.clear()
    reporter.flush()
    assert _worker_lines(caplog) == [
        "0 completed, 1 failed, 2 snoozed in the last 2.0s (1.5 jobs/s)"
    ]


@pytest.mark.parametrize("how", ["raise", "return"])
def test_an_async_handler_snoozes_as_a_function_does(make_queue, clock, how):
    q = make_queue()
    job_id = q.enqueue({"type": "A"}, max_attempts=1)
    runs: list[int] = []

    async def handler(job):
        runs.append(job.attempts)
        if len(runs) == 1:
            if how == "return":
                return Snooze(10)
            raise Snooze(10)
        return "woke"

    Worker(q, {"A": handler}, handle_signals=False).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    assert job.run_after == iso_utc(clock.now() + dt.timedelta(seconds=10))
    clock.advance(seconds=10)
    Worker(q, {"A": handler}, handle_signals=False).run(until_empty=True)
    assert q.get(job_id).result == "woke" and runs == [1, 1]
    q.close()
