"""Timeouts: the job's own, its type's and the Worker's, in that order; a thread handler
is told (``job.check()``), a process handler is stopped (SIGTERM, then SIGKILL).

Deadlines are read from the queue's clock, a fake one the tests move: a thread handler
moves it itself, and a process test moves it once the child said it runs (a progress
report). Every test runs on each backend (``make_queue``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
from typing import Any

import pytest

import jobledger
from jobledger import ConfigError, JobStatus, Worker
from jobledger._job_attempt import Attempt
from jobledger._job_types import type_timeout
from jobledger._job_view import Job

WAIT = 60  # seconds: only a bound on a hang, never a synchronisation


def _failures(q: jobledger.JobQueue) -> list[tuple[str, str, str | None]]:
    """Every failure recorded through ``q``: (job id, message, traceback), as stored."""
    seen: list[tuple[str, str, str | None]] = []
    original = q.fail

    def fail(job_id: str, error: BaseException | str) -> Job:
        failed = original(job_id, error)
        seen.append((job_id, failed.error_message or "", failed.traceback))
        return failed

    q.fail = fail  # type: ignore[method-assign]
    return seen


# -- the job's field ---------------------------------------------------------------------


def test_a_job_s_timeout_is_stored_with_it_and_read_back_as_seconds(make_queue):
    q = make_queue()
    own = q.enqueue({"type": "T"}, timeout=90)
    delta = q.enqueue({"type": "T"}, timeout=dt.timedelta(minutes=2, milliseconds=500))
    many = q.enqueue_many([{"type": "T"}, {"type": "U"}], timeout=0.25)
    none = q.enqueue({"type": "T"})
    again = make_queue()  # another process's view
    assert again.get(own).timeout == 90.0 and type(again.get(own).timeout) is float
    assert again.get(delta).timeout == 120.5
    assert [again.get(i).timeout for i in many] == [0.25, 0.25]
    assert again.get(none).timeout is None


@pytest.mark.parametrize("bad", [0, -1, True, "1h", math.nan, math.inf, dt.timedelta(0)])
def test_a_bad_timeout_is_refused_before_anything_is_stored(make_queue, bad):
    q = make_queue()
    with pytest.raises(ConfigError, match="timeout"):
        q.enqueue({"type": "T"}, timeout=bad)
    with pytest.raises(ConfigError, match="timeout"):
        q.enqueue_many([{"type": "T"}], timeout=bad)
    q.enqueue({"type": "T"}, job_id="ok")
    assert q.counts()["Queued"] == 1  # only the good one


def test_a_job_type_registers_its_timeout():
    @jobledger.job_type("Timed", timeout=dt.timedelta(hours=2))
    @dataclasses.dataclass
    class Timed:
        n: int

    @jobledger.job_type("Untimed")
    @dataclasses.dataclass
    class Untimed:
        n: int

    assert type_timeout("Timed") == 7200.0
    assert type_timeout("Untimed") is None
    with pytest.raises(ConfigError, match="the timeout of job type 'Zero'"):
        jobledger.job_type("Zero", timeout=0)


def test_a_worker_refuses_a_timeout_of_zero_and_a_negative_kill_grace(make_queue):
    q = make_queue()
    with pytest.raises(ConfigError, match="the Worker's timeout must be more than 0"):
        Worker(q, {"T": print}, timeout=0)
    with pytest.raises(ConfigError, match="kill_grace"):
        Worker(q, {"T": print}, kill_grace=-1)


# -- threads: told, not stopped ----------------------------------------------------------


def test_the_job_s_timeout_comes_before_its_type_s_and_the_worker_s(make_queue, clock):
    @jobledger.job_type("Typed", timeout=20)
    @dataclasses.dataclass
    class Typed:
        n: int

    q = make_queue()
    own = q.enqueue(Typed(1), timeout=5)
    of_type = q.enqueue(Typed(2))
    fallback = q.enqueue({"type": "Plain"})
    untimed = q.enqueue({"type": "Plain"})
    seen: dict[str, float | None] = {}

    def handler(job: Job) -> None:
        deadline = job.deadline
        seen[job.job_id] = None if deadline is None else (deadline - clock.now()).total_seconds()

    Worker(q, {"Typed": handler, "Plain": handler}, timeout=50, handle_signals=False).run(
        until_empty=True
    )
    assert seen == {own: 5.0, of_type: 20.0, fallback: 50.0, untimed: 50.0}
    q.enqueue({"type": "Plain"}, job_id="no-deadline")
    Worker(q, {"Plain": handler}, handle_signals=False).run(until_empty=True)
    assert seen["no-deadline"] is None


def test_a_thread_handler_that_checks_past_its_deadline_fails_timed_out_and_is_retried(
    make_queue, clock
):
    q = make_queue(retry_delay=0)
    job_id = q.enqueue({"type": "Long"}, timeout=5, max_attempts=2)
    failures = _failures(q)
    attempts: list[int] = []

    def handler(job: Job) -> str:
        attempts.append(job.attempts)
        job.check()  # before its deadline: nothing
        if job.attempts == 1:
            clock.advance(seconds=5)  # one step of a long job
            job.check()  # raises JobTimeout
        return "second"

    Worker(q, {"Long": handler}, handle_signals=False).run(until_empty=True)
    assert failures == [(job_id, "timed out after 5 s (the job's own timeout)", None)]
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.result == "second"
    assert attempts == [1, 2]


def test_a_thread_handler_that_returns_past_its_deadline_without_checking_succeeds(
    make_queue, clock
):
    q = make_queue()
    job_id = q.enqueue({"type": "Long"}, max_attempts=1)

    def handler(job: Job) -> str:
        clock.advance(seconds=120)
        return "late but done"

    Worker(q, {"Long": handler}, timeout=60, handle_signals=False).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.result == "late but done"


def test_the_worker_s_timeout_names_itself_in_the_failure(make_queue, clock):
    q = make_queue()
    job_id = q.enqueue({"type": "Long"}, max_attempts=1)

    def handler(job: Job) -> None:
        clock.advance(seconds=61)
        job.check()

    Worker(q, {"Long": handler}, timeout=60, handle_signals=False).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "timed out after 60 s (the Worker's timeout)"
    assert job.traceback is None


# -- processes: stopped ------------------------------------------------------------------


class Observed(Worker):
    """A Worker whose attempts report progress to the test (the sink the queue's progress
    storage would fill): ``ready`` is set by a child's "ready" report."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready = threading.Event()
        self.attempts: list[Attempt] = []

    def _prepare_attempt(self, job: Job, attempt: Attempt) -> None:

        def progress(done: float, total: float | None, note: str | None) -> None:
            if note == "ready":
                self.ready.set()

        attempt.on_progress = progress
        self.attempts.append(attempt)


def _run_until_ready(worker: Observed) -> threading.Thread:
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True})
    runner.start()
    assert worker.ready.wait(WAIT), "the job's process never said it runs"
    return runner


def test_a_process_past_its_deadline_gets_sigterm_and_unwinds(make_queue, clock, tmp_path):
    q = make_queue()
    mark = tmp_path / "unwound"
    job_id = q.enqueue({"type": "Wait", "mark": str(mark)}, timeout=30, max_attempts=1)
    worker = Observed(
        q,
        {"Wait": "tests._handlers:ready_then_wait"},
        isolation="process",
        kill_grace=WAIT,
        handle_signals=False,
    )
    runner = _run_until_ready(worker)
    clock.advance(seconds=30)
    runner.join(WAIT)
    assert not runner.is_alive()
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == (
        "timed out after 30 s (the job's own timeout; its process was stopped by SIGTERM)"
    )
    assert job.traceback is None
    assert mark.read_text() == "unwound"  # SIGTERM ran the handler's finally block


def test_a_process_that_ignores_sigterm_gets_sigkill_after_the_grace(make_queue, clock):
    q = make_queue(retry_delay=0)
    job_id = q.enqueue({"type": "Stubborn"}, max_attempts=2)
    failures = _failures(q)
    worker = Observed(
        q,
        {"Stubborn": "tests._handlers:ignore_sigterm"},
        isolation="process",
        timeout=5,
        kill_grace=0.2,
        handle_signals=False,
    )
    runner = threading.Thread(target=worker.run, kwargs={"until_empty": True, "wait_delayed": True})
    runner.start()
    for _ in range(2):  # each attempt: ready, then past its deadline
        assert worker.ready.wait(WAIT)
        worker.ready.clear()
        clock.advance(seconds=5)
    runner.join(WAIT)
    assert not runner.is_alive()
    message = (
        "timed out after 5 s (the Worker's timeout; its process did not end within 0.2 s "
        "of SIGTERM and was killed by SIGKILL)"
    )
    assert failures == [(job_id, message, None), (job_id, message, None)]
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 2


def test_a_process_handler_that_checks_times_out_by_its_own_clock(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Checker"}, timeout=0.3, max_attempts=1)
    Worker(
        q, {"Checker": "tests._handlers:slow_checker"}, isolation="process", handle_signals=False
    ).run(until_empty=True)
    job = q.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "timed out after 0.3 s (the job's own timeout)"


def test_a_process_handler_sees_its_deadline(make_queue):
    q = make_queue()
    job_id = q.enqueue({"type": "Check"}, timeout=3600)
    Worker(
        q, {"Check": "tests._handlers:check_deadline"}, isolation="process", handle_signals=False
    ).run(until_empty=True)
    assert q.get(job_id).result == "checked"
